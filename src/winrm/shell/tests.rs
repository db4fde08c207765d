//! The command cycle against a scripted exchange: shell reuse, re-creation, Receive polling,
//! deadlines and cleanup. Time is paused, so deadlines cost nothing.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::*;
use crate::winrm::error::{Fault, WSMAN_CODE_OPERATION_TIMEOUT, WSMAN_CODE_SHELL_NOT_FOUND};
use crate::winrm::powershell;

const SHELL: &str = "SHELL-1";
const SHELL2: &str = "SHELL-2";
const CMD: &str = "CMD-1";

enum Outcome {
    Xml(String),
    Fail(Failure),
    /// Wait, then answer.
    After(Duration, Box<Outcome>),
}

struct Scripted {
    expected: VecDeque<(Operation, Outcome)>,
    calls: Vec<(Operation, String)>,
    /// Answers every Receive that the script does not list (a server that never finishes).
    endless_receive: Option<fn() -> Outcome>,
}

impl Scripted {
    fn new(steps: Vec<(Operation, Outcome)>) -> Self {
        Scripted {
            expected: steps.into(),
            calls: Vec::new(),
            endless_receive: None,
        }
    }

    fn ops(&self) -> Vec<Operation> {
        self.calls.iter().map(|(op, _)| *op).collect()
    }
}

impl Exchange for Scripted {
    fn authority(&self) -> &str {
        "127.0.1.2:5985"
    }

    fn url(&self) -> &str {
        "http://127.0.1.2:5985/wsman"
    }

    async fn exchange(
        &mut self,
        operation: Operation,
        soap: &str,
        _message_id: &str,
        _timeout: Duration,
    ) -> Result<Document, WinrmError> {
        self.calls.push((operation, soap.to_string()));
        let listed = self
            .expected
            .front()
            .is_some_and(|(op, _)| *op == operation);
        if let (Operation::ReceiveOutput, Some(answer), false) =
            (operation, self.endless_receive, listed)
        {
            return match answer() {
                Outcome::Xml(xml) => Ok(Document::parse(xml.as_bytes()).unwrap()),
                Outcome::Fail(failure) => {
                    Err(WinrmError::new("127.0.1.2:5985", operation, failure))
                }
                Outcome::After(..) => unreachable!("endless answers come at once"),
            };
        }
        let (expected, mut outcome) = self
            .expected
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected {operation} after {:?}", self.ops()));
        assert_eq!(operation, expected, "calls so far: {:?}", self.ops());
        loop {
            match outcome {
                Outcome::After(wait, next) => {
                    tokio::time::sleep(wait).await;
                    outcome = *next;
                }
                Outcome::Xml(xml) => return Ok(Document::parse(xml.as_bytes()).unwrap()),
                Outcome::Fail(failure) => {
                    return Err(WinrmError::new("127.0.1.2:5985", operation, failure));
                }
            }
        }
    }
}

fn envelope(body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn created(shell: &str) -> Outcome {
    Outcome::Xml(envelope(&format!(
        r#"<w:SelectorSet><w:Selector Name="ShellId">{shell}</w:Selector></w:SelectorSet>"#
    )))
}

fn started(cmd: &str) -> Outcome {
    Outcome::Xml(envelope(&format!(
        "<rsp:CommandResponse><rsp:CommandId>{cmd}</rsp:CommandId></rsp:CommandResponse>"
    )))
}

fn output(stdout: &[u8], exit: Option<i32>) -> Outcome {
    let state = match exit {
        Some(code) => format!(
            r#"<rsp:CommandState CommandId="{CMD}" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState>"#
        ),
        None => format!(
            r#"<rsp:CommandState CommandId="{CMD}" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"/>"#
        ),
    };
    Outcome::Xml(envelope(&format!(
        r#"<rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="{CMD}">{}</rsp:Stream>{state}</rsp:ReceiveResponse>"#,
        BASE64.encode(stdout)
    )))
}

fn empty() -> Outcome {
    Outcome::Xml(envelope(""))
}

fn fault(code: u32) -> Outcome {
    Outcome::Fail(Failure::Fault(Box::new(Fault {
        code: "s:Receiver".into(),
        subcode: Some("w:Whatever".into()),
        reason: "test fault".into(),
        wsman_code: Some(code),
        machine: None,
        message: None,
    })))
}

fn timed_out() -> Outcome {
    fault(WSMAN_CODE_OPERATION_TIMEOUT)
}

fn driver(steps: Vec<(Operation, Outcome)>) -> ShellDriver<Scripted> {
    ShellDriver::new(
        Scripted::new(steps),
        ShellConfig {
            codepage: 437,
            operation_timeout_secs: 20,
            max_output: 1024 * 1024,
        },
    )
}

use Operation::{
    CreateShell as Create, DeleteShell as Delete, ReceiveOutput as Receive, RunCommand as Command,
    SendInput as Send, SignalTerminate as Signal,
};

#[tokio::test(start_paused = true)]
async fn one_shell_serves_several_commands_and_timed_out_receives_are_repeated() {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, started(CMD)),
        (Receive, timed_out()),
        (Receive, output(b"one ", None)),
        (Receive, timed_out()),
        (Receive, output(b"two", Some(0))),
        (Signal, empty()),
        (Command, started(CMD)),
        (Receive, output(b"again", Some(7))),
        (Signal, empty()),
        (Delete, empty()),
    ]);
    let plan = powershell::plan("Write-Output 'one two'");
    let out = d.run(&plan, Duration::from_secs(60)).await.unwrap();
    assert_eq!(out.stdout, b"one two");
    assert_eq!(out.exit_code, 0);
    assert_eq!(d.shell_id(), Some(SHELL));

    let out = d.run(&plan, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.exit_code),
        (b"again".as_slice(), 7)
    );

    d.delete_shell().await.unwrap();
    assert_eq!(d.shell_id(), None);
    // Closing twice is a no-op.
    d.delete_shell().await.unwrap();
    assert!(d.exchange.expected.is_empty());
    let calls = &d.exchange.calls;
    assert!(
        calls[0]
            .1
            .contains("<w:Option Name=\"WINRS_CODEPAGE\">437</w:Option>")
    );
    assert!(calls.iter().skip(1).all(|(_, soap)| soap.contains(SHELL)));
}

#[tokio::test(start_paused = true)]
async fn a_vanished_shell_is_recreated_once() {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, started(CMD)),
        (Receive, output(b"", Some(0))),
        (Signal, empty()),
        (Command, fault(WSMAN_CODE_SHELL_NOT_FOUND)),
        (Create, created(SHELL2)),
        (Command, started(CMD)),
        (Receive, output(b"ok", Some(0))),
        (Signal, empty()),
    ]);
    let plan = powershell::plan("1");
    d.run(&plan, Duration::from_secs(60)).await.unwrap();
    let out = d.run(&plan, Duration::from_secs(60)).await.unwrap();
    assert_eq!(out.stdout, b"ok");
    assert_eq!(d.shell_id(), Some(SHELL2));
    assert!(d.exchange.expected.is_empty());
}

#[tokio::test(start_paused = true)]
async fn shell_not_found_on_a_fresh_shell_is_an_error() {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, fault(WSMAN_CODE_SHELL_NOT_FOUND)),
        (Delete, empty()),
    ]);
    let err = d
        .run(&powershell::plan("1"), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fault);
    assert_eq!(err.operation(), Operation::RunCommand);
    assert!(d.exchange.expected.is_empty());
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_the_receive_loop_then_signals_and_deletes() {
    let mut steps = vec![(Create, created(SHELL)), (Command, started(CMD))];
    // The server answers "no output yet" after its OperationTimeout: at 20 s, at 40 s, and the
    // third Receive (asked at 40 s) is still pending when the deadline strikes at 45 s.
    for _ in 0..3 {
        steps.push((
            Receive,
            Outcome::After(Duration::from_secs(20), Box::new(timed_out())),
        ));
    }
    steps.push((Signal, empty()));
    steps.push((Delete, empty()));
    let mut d = driver(steps);
    let started_at = Instant::now();
    let err = d
        .run(
            &powershell::plan("Start-Sleep 600"),
            Duration::from_secs(45),
        )
        .await;
    let err = err.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "receive output on 127.0.1.2:5985: command did not finish within 45 s"
    );
    assert!(started_at.elapsed() >= Duration::from_secs(45));
    assert!(started_at.elapsed() < Duration::from_secs(46));
    let ops = d.exchange.ops();
    let n = ops.len();
    assert_eq!(&ops[n - 2..], &[Signal, Delete], "{ops:?}");
    assert_eq!(d.shell_id(), None);
}

#[tokio::test(start_paused = true)]
async fn receive_asks_for_no_more_than_the_time_left() {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, started(CMD)),
        (
            Receive,
            Outcome::After(Duration::from_secs(20), Box::new(timed_out())),
        ),
        (Receive, output(b"", Some(0))),
        (Signal, empty()),
    ]);
    d.run(&powershell::plan("1"), Duration::from_secs(25))
        .await
        .unwrap();
    let receives: Vec<&String> = d
        .exchange
        .calls
        .iter()
        .filter(|(op, _)| *op == Receive)
        .map(|(_, soap)| soap)
        .collect();
    assert!(receives[0].contains("<w:OperationTimeout>PT20S</w:OperationTimeout>"));
    assert!(receives[1].contains("<w:OperationTimeout>PT5S</w:OperationTimeout>"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_command_is_cleaned_up_and_the_next_one_gets_a_new_shell() {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, started(CMD)),
        (Receive, fault(5)),
        (Signal, empty()),
        (Delete, empty()),
        (Create, created(SHELL2)),
        (Command, started(CMD)),
        (Receive, output(b"", Some(0))),
        (Signal, empty()),
    ]);
    let plan = powershell::plan("1");
    let err = d.run(&plan, Duration::from_secs(60)).await.unwrap_err();
    assert_eq!(err.fault().unwrap().wsman_code, Some(5));
    assert_eq!(d.shell_id(), None);
    d.run(&plan, Duration::from_secs(60)).await.unwrap();
    assert_eq!(d.shell_id(), Some(SHELL2));
}

#[tokio::test(start_paused = true)]
async fn cleanup_failures_do_not_hide_the_original_error() {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, started(CMD)),
        (
            Receive,
            Outcome::Fail(Failure::Connect("connection lost: reset".into())),
        ),
        (
            Signal,
            Outcome::Fail(Failure::Connect("cannot connect: refused".into())),
        ),
        (
            Delete,
            Outcome::Fail(Failure::Connect("cannot connect: refused".into())),
        ),
    ]);
    let err = d
        .run(&powershell::plan("1"), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.operation(), Operation::ReceiveOutput);
    assert!(err.to_string().contains("connection lost"));
    assert_eq!(d.shell_id(), None);
}

#[tokio::test(start_paused = true)]
async fn rejected_credentials_stop_all_traffic() {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, started(CMD)),
        (Receive, output(b"", Some(0))),
        (Signal, empty()),
        (Command, Outcome::Fail(Failure::Auth("rejected".into()))),
    ]);
    let plan = powershell::plan("1");
    d.run(&plan, Duration::from_secs(60)).await.unwrap();
    let err = d.run(&plan, Duration::from_secs(60)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    // No Signal, no Delete: the script is exhausted and nothing else was sent.
    assert_eq!(d.exchange.calls.len(), 5);
    assert_eq!(d.shell_id(), None);
}

#[tokio::test(start_paused = true)]
async fn a_long_script_goes_through_stdin_in_chunks() {
    let script = "Write-Output 'some long line of script text'\n".repeat(4000);
    let plan = powershell::plan(&script);
    let stdin_len = plan.stdin.as_ref().unwrap().len();
    let chunks = stdin_len.div_ceil(STDIN_CHUNK);
    assert!(chunks >= 3, "{chunks}");
    let mut steps = vec![(Create, created(SHELL)), (Command, started(CMD))];
    steps.extend((0..chunks).map(|_| (Send, empty())));
    steps.push((Receive, output(b"", Some(0))));
    steps.push((Signal, empty()));
    let mut d = driver(steps);
    d.run(&plan, Duration::from_secs(60)).await.unwrap();

    let calls = &d.exchange.calls;
    assert!(
        calls[1]
            .1
            .contains("<w:Option Name=\"WINRS_CONSOLEMODE_STDIN\">FALSE</w:Option>")
    );
    let sends: Vec<&String> = calls
        .iter()
        .filter(|(op, _)| *op == Send)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(sends.len(), chunks);
    for (i, soap) in sends.iter().enumerate() {
        assert_eq!(soap.contains("End=\"true\""), i == chunks - 1);
        assert!(soap.len() < 100_000, "envelope of {} bytes", soap.len());
    }
    // The chunks put together are the stdin text.
    let mut joined = Vec::new();
    for soap in sends {
        let doc = Document::parse(soap.as_bytes()).unwrap();
        let stream = doc
            .root()
            .find(crate::winrm::soap::NS_SHELL, "Stream")
            .unwrap();
        joined.extend(BASE64.decode(stream.text.trim()).unwrap());
    }
    assert_eq!(&joined, plan.stdin.as_ref().unwrap());
}

/// A server that answers every Receive at once, without output and without finishing.
async fn against_an_idle_server(answer: fn() -> Outcome) -> (WinrmError, Vec<Operation>) {
    against_an_idle_server_for(answer, Duration::from_secs(20)).await
}

async fn against_an_idle_server_for(
    answer: fn() -> Outcome,
    deadline: Duration,
) -> (WinrmError, Vec<Operation>) {
    let mut d = driver(vec![
        (Create, created(SHELL)),
        (Command, started(CMD)),
        (Signal, empty()),
        (Delete, empty()),
    ]);
    d.exchange.endless_receive = Some(answer);
    let err = d.run(&powershell::plan("1"), deadline).await.unwrap_err();
    (err, d.exchange.ops())
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_waits_fails_after_twice_the_operation_timeout() {
    let started = Instant::now();
    let (err, ops) = against_an_idle_server_for(timed_out, Duration::from_secs(600)).await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains(
            "Receives at once without output for more than 40 s; a WinRM server holds a Receive"
        ),
        "{text}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(40) && waited < Duration::from_secs(43),
        "{waited:?}"
    );
    assert!(count_of(&ops, Receive) <= 30, "{ops:?}");
    assert_eq!(&ops[ops.len() - 2..], &[Signal, Delete]);
}

#[tokio::test(start_paused = true)]
async fn receives_answered_at_once_without_progress_back_off() {
    for answer in [(|| output(b"", None)) as fn() -> Outcome, timed_out] {
        let (err, ops) = against_an_idle_server(answer).await;
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        let receives = count_of(&ops, Receive);
        // 50 ms doubling to 2 s: about 15 Receives in 20 s (without the pause: unbounded).
        assert!(
            (10..=20).contains(&receives),
            "{receives} receives: {ops:?}"
        );
        assert_eq!(&ops[ops.len() - 2..], &[Signal, Delete]);
    }
}

fn count_of(ops: &[Operation], which: Operation) -> usize {
    ops.iter().filter(|op| **op == which).count()
}

#[tokio::test(start_paused = true)]
async fn output_past_the_cap_stops_the_command() {
    let (err, ops) = against_an_idle_server(|| output(&[b'x'; 300 * 1024], None)).await;
    assert_eq!(err.kind(), ErrorKind::Limit, "{err}");
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "receive output on 127.0.1.2:5985: the command's output passed 1 MiB, the most one \
         command may produce (winrm: { max_output_mb: N } in the inventory raises it); the \
         command was stopped"
    );
    assert_eq!(count_of(&ops, Receive), 4, "{ops:?}");
    assert_eq!(&ops[ops.len() - 2..], &[Signal, Delete]);
}

#[test]
fn the_idle_backoff_doubles_up_to_two_seconds() {
    let delays: Vec<u64> = IdleBackoff::new()
        .take(8)
        .map(|d| d.as_millis() as u64)
        .collect();
    assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
}
