//! The pure core performs no I/O and no async: no file under src/core names tokio, reqwest,
//! indicatif, std::fs, std::net sockets or process spawning.

#[test]
fn core_names_no_effectful_crate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut stack = vec![dir];
    let mut checked = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            checked += 1;
            let source = std::fs::read_to_string(&p).unwrap();
            // Code only: comments may name what the core must not use.
            let text: String = source
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for banned in [
                "tokio",
                "reqwest",
                "indicatif",
                "std::fs",
                "TcpStream",
                "std::process",
                "async fn",
                ".await",
            ] {
                assert!(!text.contains(banned), "{} uses `{banned}`", p.display());
            }
        }
    }
    assert!(checked >= 5);
}
