//! The lab in a Kerberos domain (`inventory/lab-kerberos.yaml`) through the real binary: a real
//! MIT KDC on loopback (`tests/kdc/realm.sh`) issues the tickets, the simulator accepts them with
//! the hosts' keys from the realm's keytab (`sim serve --keytab`), and every simulated host
//! refuses NTLM (`transport_defaults: { ntlm: false }`), so nothing can pass by falling back.

mod common;

use common::{Lab, PASSWORD, Realm};

/// Every host of the lab by its DNS name (`host:` in the inventory).
const HOSTS: &[&str] = &[
    "wsus-hq.lab.test",
    "wsus-eu.lab.test",
    "wsus-eu-paris.lab.test",
    "wsus-eu-berlin.lab.test",
    "wsus-us.lab.test",
    "wsus-us-dallas.lab.test",
    "pc-hq-1.lab.test",
    "pc-eu-1.lab.test",
    "pc-paris-1.lab.test",
    "pc-berlin-1.lab.test",
    "pc-us-1.lab.test",
    "pc-dallas-1.lab.test",
];

const HARDENED: &str = "seed: 5\ntransport_defaults: { ntlm: false }\n";

/// The Kerberos lab on 127.`subnet`.x.y, its KDC on 127.`subnet`.0.1:18888 (where the moved
/// inventory points).
fn kerberos_lab(subnet: u8, clock_offset: Option<&str>) -> (Realm, Lab) {
    let realm = Realm::start(&format!("127.{subnet}.0.1:18888"), HOSTS, clock_offset);
    let keytab = realm.keytab.display().to_string();
    let lab = Lab::start_with(
        "lab-kerberos.yaml",
        subnet,
        Some(HARDENED),
        &["--keytab", &keytab],
    );
    (realm, lab)
}

#[test]
fn apply_repairs_the_lab_over_kerberos_with_sealing_and_no_ntlm_anywhere() {
    let (realm, lab) = kerberos_lab(91, None);
    assert!(
        lab.sim.banner.contains("wsus-hq")
            && lab
                .sim
                .banner
                .contains("kerberos HTTP/wsus-hq.lab.test@LAB.TEST, no NTLM"),
        "{}",
        lab.sim.banner
    );
    let d = lab.wsusfix("apply", &["--yes"]).run().code(0);
    assert!(
        d.stdout
            .contains("Result: 6 done; every restore done (exit 0"),
        "{}",
        d.stdout
    );
    assert_eq!(lab.problems(), Vec::<String>::new());
    // Every host got its tickets from the KDC: a service ticket for each HTTP/ SPN.
    for h in HOSTS {
        assert!(
            realm.log().contains(&format!("HTTP/{h}@LAB.TEST")),
            "no ticket for HTTP/{h}:\n{}",
            realm.log()
        );
    }
    // The read-only commands work over Kerberos too.
    lab.wsusfix("verify", &[]).run().code(0);
    lab.wsusfix("plan", &["--facts"]).run().code(0);
    let d = lab
        .wsusfix(
            "exec",
            &["--host", "wsus-eu", "--", "# wsusfix-op: child_servers {}"],
        )
        .run()
        .code(0);
    assert!(
        d.stdout
            .contains("== wsus-eu (exit 0, kerberos)\nwsusfix:child="),
        "{}",
        d.stdout
    );

    // discover walks the hierarchy over Kerberos: WSUS lists each server by its DNS name, which
    // becomes its `host:` beside the address the hosts file gives.
    let hosts = lab.dir.path().join("sim-hosts");
    let found = lab.dir.path().join("found.yaml");
    let kdc = realm.kdc.clone();
    common::Run::new([
        "discover",
        "--root",
        "wsus-hq.lab.test",
        "--hosts",
        hosts.to_str().unwrap(),
        "--auth",
        "kerberos",
        "--kdc",
        &kdc,
        "--username",
        "wsusfix@LAB.TEST",
        "--out",
        found.to_str().unwrap(),
    ])
    .env("WSUSFIX_PASSWORD", PASSWORD)
    .run()
    .code(0);
    let text = std::fs::read_to_string(&found).unwrap();
    assert!(text.contains("auth: kerberos"), "{text}");
    assert!(
        text.contains(&format!("kerberos: {{ kdc: '{kdc}' }}")),
        "{text}"
    );
    assert!(text.contains("host: wsus-eu-paris.lab.test"), "{text}");
    let inv = wsusfix::core::inventory::load(&text)
        .inventory
        .expect("it validates");
    assert_eq!(inv.servers().len(), 6);
    common::Run::new(["plan", "-i", found.to_str().unwrap(), "--facts"])
        .env("WSUSFIX_PASSWORD", PASSWORD)
        .run()
        .code(0);
}

#[test]
fn a_wrong_password_is_one_failed_logon_however_many_hosts() {
    let (realm, lab) = kerberos_lab(92, None);
    let d = lab
        .wsusfix("exec", &["--host", "all", "--", "Get-Date"])
        .env("WSUSFIX_PASSWORD", "Wrong-Passw0rd!")
        .run()
        .code(2);
    assert_eq!(
        realm.log_count("PREAUTH_FAILED"),
        1,
        "one failed logon at the KDC:\n{}",
        realm.log()
    );
    assert!(
        d.stdout.contains(
            "the KDC refused the password of wsusfix@LAB.TEST (KDC_ERR_PREAUTH_FAILED (24)"
        ),
        "{}",
        d.stdout
    );
    let not_tried = d
        .stdout
        .matches("not tried: the credentials of wsusfix@LAB.TEST were refused by")
        .count();
    assert_eq!(not_tried, 5, "{}", d.stdout);
    assert!(d.stdout.contains("6 hosts: 0 ok, 6 failed"), "{}", d.stdout);
    assert!(!d.stdout.contains("Wrong-Passw0rd!") && !d.stderr.contains("Wrong-Passw0rd!"));

    // apply: one failed logon too, the run's servers fail or are blocked, exit 2.
    let d = lab
        .wsusfix("apply", &["--yes"])
        .env("WSUSFIX_PASSWORD", "Wrong-Passw0rd!")
        .run()
        .code(2);
    assert_eq!(realm.log_count("PREAUTH_FAILED"), 2, "{}", realm.log());
    assert!(d.stdout.contains("KDC_ERR_PREAUTH_FAILED"), "{}", d.stdout);
}

#[test]
fn a_host_whose_clock_is_off_from_the_kdcs_refuses_the_ticket_and_says_why() {
    // The KDC runs 10 minutes ahead: sspi adopts the KDC's time for its requests (the KDC's own
    // skew check passes), so the host, on real time, sees an authenticator 10 minutes in the
    // future and refuses it with KRB_AP_ERR_SKEW, as Windows does.
    let (realm, lab) = kerberos_lab(93, Some("+10m"));
    let d = lab
        .wsusfix("exec", &["--host", "wsus-hq", "--", "Get-Date"])
        .run()
        .code(2);
    assert!(
        d.stdout
            .contains("its clock and the KDC's differ by more than the allowed skew")
            && d.stdout.contains("KRB_AP_ERR_SKEW (37)"),
        "{}",
        d.stdout
    );
    assert!(realm.log_count("TGS_REQ") >= 1, "{}", realm.log());
}

#[test]
fn an_unknown_spn_and_a_kdc_that_is_down_name_their_cause_and_never_fall_back_to_ntlm() {
    // The realm has no service principal for wsus-hq.lab.test.
    let subnet = 94;
    let realm = Realm::start(&format!("127.{subnet}.0.1:18888"), &HOSTS[1..], None);
    let keytab = realm.keytab.display().to_string();
    let lab = Lab::start_with(
        "lab-kerberos.yaml",
        subnet,
        Some(HARDENED),
        &["--keytab", &keytab],
    );
    let d = lab
        .wsusfix("exec", &["--host", "wsus-hq", "--", "Get-Date"])
        .run()
        .code(2);
    assert!(
        d.stdout.contains(
            "the KDC of LAB.TEST knows no service principal HTTP/wsus-hq.lab.test (KDC_ERR_S_PRINCIPAL_UNKNOWN (7)"
        ),
        "{}",
        d.stdout
    );
    assert!(!d.stdout.contains("NTLM"), "{}", d.stdout);

    // The KDC goes down.
    drop(realm);
    let d = lab
        .wsusfix("exec", &["--host", "wsus-eu", "--", "Get-Date"])
        .run()
        .code(2);
    assert!(
        d.stdout.contains(&format!(
            "cannot reach the KDC 127.{subnet}.0.1:18888 of the realm LAB.TEST: connection refused"
        )),
        "{}",
        d.stdout
    );
    assert!(!d.stdout.contains("NTLM"), "{}", d.stdout);
}
