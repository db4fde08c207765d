//! Plan rendering: text (waves, a tree of servers with their steps, legend, summary), JSON and
//! Graphviz DOT. Pure functions of the plan; snapshot-tested.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::inventory::Role;
use super::plan::{
    Affected, PathSource, Phase, Plan, PlanPath, PlannedServer, PlannedStep, StepKind,
};

/// The plan as JSON (docs/plan-format.md), pretty-printed with a final newline.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

fn marker(step: &PlannedStep) -> char {
    match step.phase {
        Phase::Hold => '>',
        Phase::Restore => '<',
        Phase::Verify => '?',
        Phase::Main if step.irreversible => '!',
        Phase::Main => match &step.kind {
            StepKind::Do(a) if a.read_only() => '=',
            StepKind::Do(super::playbook::Action::LocaleGuard { .. }) => '=',
            _ => '~',
        },
    }
}

fn version_name(path: PlanPath) -> String {
    match path.version() {
        Some(v) => v.display().to_string(),
        None => path.to_string(),
    }
}

fn header(s: &PlannedServer) -> String {
    let role = match (s.role, &s.upstream) {
        (Role::Upstream, _) => "upstream".to_string(),
        (r, Some(u)) => format!("{r} of {u}"),
        (r, None) => r.to_string(),
    };
    let version = match s.path_source {
        PathSource::Runtime => "version decided at run time from gathered facts".to_string(),
        PathSource::Inventory => format!("{} from inventory", version_name(s.path)),
        PathSource::Facts => format!("{} from live facts", version_name(s.path)),
    };
    let mut h = format!("{}  [{role}, {version}", s.name);
    if let Some(w) = &s.waits_for {
        let _ = write!(h, ", waits for {w}");
    }
    h.push(']');
    h
}

fn write_steps(out: &mut String, prefix: &str, steps: &[PlannedStep]) {
    for (i, st) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "{prefix}{:>3} {}  {:<22} {}",
            i + 1,
            marker(st),
            st.kind.name(),
            st.detail
        );
    }
}

fn write_server(out: &mut String, s: &PlannedServer, prefix: &str) {
    if let Some(f) = &s.facts {
        let verdict = match f.affected {
            Affected::Affected => "affected",
            Affected::NotAffected => "not affected",
            Affected::Unknown => "unknown",
        };
        let _ = writeln!(out, "{prefix}      facts: {verdict}");
        for e in &f.evidence {
            let _ = writeln!(out, "{prefix}        - {e}");
        }
        for c in &f.contradictions {
            let _ = writeln!(out, "{prefix}        ! {c}");
        }
    }
    if let Some(reason) = &s.skip {
        let _ = writeln!(out, "{prefix}      skipped: {reason}");
    }
    if !s.steps.is_empty() {
        write_steps(out, &format!("{prefix}   "), &s.steps);
    }
    for (v, steps) in &s.alternatives {
        let _ = writeln!(out, "{prefix}      if {}:", v.display());
        write_steps(out, &format!("{prefix}      "), steps);
    }
    if s.clients.is_empty() && s.skip.is_none() {
        let _ = writeln!(
            out,
            "{prefix}      (no canary clients: the fix is not verified on a client)"
        );
    }
}

/// The plan as text for a terminal or a change ticket.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan: playbook {} on {} server{} (fingerprint {})",
        plan.playbook,
        plan.summary.servers,
        if plan.summary.servers == 1 { "" } else { "s" },
        &plan.fingerprint[..12.min(plan.fingerprint.len())]
    );
    if !plan.limit.is_empty() {
        let _ = writeln!(
            out,
            "Limited to the subtree{} of {}",
            if plan.limit.len() == 1 { "" } else { "s" },
            plan.limit.join(", ")
        );
    }
    out.push('\n');
    if !plan.preconditions.is_empty() {
        let _ = writeln!(
            out,
            "Preconditions (outside --limit, not touched by this plan):"
        );
        for p in &plan.preconditions {
            let _ = writeln!(out, "  {}: {}", p.name, p.reason);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Waves (a server starts as soon as its own upstream is done; siblings run in parallel):"
    );
    for (i, w) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}  {}", i + 1, w.join(", "));
    }
    out.push('\n');

    // The tree: plan roots in name order, children by name.
    let by_name: BTreeMap<&str, &PlannedServer> =
        plan.servers.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut roots = Vec::new();
    for s in &plan.servers {
        match &s.waits_for {
            Some(u) if by_name.contains_key(u.as_str()) => children
                .entry(u.as_str())
                .or_default()
                .push(s.name.as_str()),
            _ => roots.push(s.name.as_str()),
        }
    }
    roots.sort_unstable();
    for c in children.values_mut() {
        c.sort_unstable();
    }
    // Iterative depth-first walk (deep chains must not overflow the stack).
    // Stack items: (name, prefix for its header, prefix for its body).
    let mut stack: Vec<(&str, String, String)> = roots
        .iter()
        .rev()
        .map(|r| (*r, String::new(), String::new()))
        .collect();
    while let Some((name, head_prefix, body_prefix)) = stack.pop() {
        let s = by_name[name];
        let _ = writeln!(out, "{head_prefix}{}", header(s));
        let kids = children.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let step_prefix = if kids.is_empty() {
            format!("{body_prefix} ")
        } else {
            format!("{body_prefix}|")
        };
        write_server(&mut out, s, &step_prefix);
        for (i, k) in kids.iter().enumerate().rev() {
            let last = i == kids.len() - 1;
            let head = format!("{body_prefix}{}", if last { "`-- " } else { "+-- " });
            let body = format!("{body_prefix}{}", if last { "    " } else { "|   " });
            stack.push((k, head, body));
        }
        if stack.last().is_none_or(|(_, h, _)| h.is_empty()) {
            out.push('\n');
        }
    }
    let _ = writeln!(
        out,
        "Legend: ! irreversible  ~ changes state  = read-only check  > temporary change  < guaranteed restore  ? client verification"
    );
    let sm = &plan.summary;
    let mut parts = vec![
        format!(
            "{} server{}",
            sm.servers,
            if sm.servers == 1 { "" } else { "s" }
        ),
        format!(
            "{} hotfix install{}",
            sm.hotfix_installs,
            if sm.hotfix_installs == 1 { "" } else { "s" }
        ),
        format!(
            "{} approval reset{}",
            sm.approval_resets,
            if sm.approval_resets == 1 { "" } else { "s" }
        ),
        format!(
            "{} replica hold{}",
            sm.replica_holds,
            if sm.replica_holds == 1 { "" } else { "s" }
        ),
    ];
    if sm.decided_at_runtime > 0 {
        parts.push(format!("{} decided at run time", sm.decided_at_runtime));
    }
    if sm.skipped > 0 {
        parts.push(format!("{} skipped", sm.skipped));
    }
    parts.push(format!(
        "{} wave{}",
        sm.waves,
        if sm.waves == 1 { "" } else { "s" }
    ));
    let _ = writeln!(out, "Summary: {}", parts.join(", "));
    out
}

fn dot_id(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The hierarchy as Graphviz DOT, colored by path.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph wsusfix {{");
    let _ = writeln!(
        out,
        "  graph [rankdir=TB, label=\"wsusfix plan: playbook {} (fingerprint {})\", labelloc=t, fontname=\"Helvetica\"];",
        plan.playbook,
        &plan.fingerprint[..12.min(plan.fingerprint.len())]
    );
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];");
    for p in &plan.preconditions {
        let _ = writeln!(
            out,
            "  {} [label=\"{}\\nprecondition\", fillcolor=\"#f0f0f0\", style=\"rounded,dotted\"];",
            dot_id(&p.name),
            p.name
        );
    }
    for s in &plan.servers {
        let (color, what) = if s.skip.is_some() {
            ("#ffffff", "skipped".to_string())
        } else {
            match s.path.as_str() {
                "3.0-sp1" => ("#9ecae1", "3.0 SP1: hotfix".to_string()),
                "3.0-rtm" => ("#fdae6b", "3.0 RTM: approval reset".to_string()),
                _ => ("#d9d9d9", "decided at run time".to_string()),
            }
        };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\\n{} - {what}\", fillcolor=\"{color}\"];",
            dot_id(&s.name),
            s.name,
            s.role
        );
    }
    for s in &plan.servers {
        if let Some(u) = &s.upstream {
            let style = if s.role == Role::Replica {
                "dashed"
            } else {
                "solid"
            };
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"{}\", style={style}];",
                dot_id(u),
                dot_id(&s.name),
                s.role
            );
        }
    }
    let _ = writeln!(out, "  subgraph cluster_legend {{");
    let _ = writeln!(out, "    label=\"legend\"; fontname=\"Helvetica\";");
    let _ = writeln!(
        out,
        "    legend_sp1 [label=\"3.0 SP1: hotfix 954960\", fillcolor=\"#9ecae1\"];"
    );
    let _ = writeln!(
        out,
        "    legend_rtm [label=\"3.0 RTM: approval reset\", fillcolor=\"#fdae6b\"];"
    );
    let _ = writeln!(
        out,
        "    legend_run [label=\"decided at run time\", fillcolor=\"#d9d9d9\"];"
    );
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}
