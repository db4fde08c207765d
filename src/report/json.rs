//! NDJSON events on stdout: one object per line, each with `run_id` and `time`; the first is
//! `run-started` with `schema_version`, the last `run-finished`, followed by the `recap`.

use std::io::Write;

use super::Sink;
use super::recap::Recap;
use crate::exec::events::Event;

/// Writes NDJSON.
pub struct JsonSink<W: Write + Send> {
    out: W,
    run_id: String,
}

impl<W: Write + Send> JsonSink<W> {
    /// A sink for `run_id`.
    pub fn new(out: W, run_id: &str) -> Self {
        JsonSink {
            out,
            run_id: run_id.to_string(),
        }
    }

    fn write(&mut self, mut v: serde_json::Value) {
        if let Some(obj) = v.as_object_mut() {
            obj.insert("run_id".into(), self.run_id.clone().into());
            obj.insert("time".into(), crate::journal::record::now().into());
        }
        let _ = writeln!(self.out, "{v}");
        let _ = self.out.flush();
    }
}

impl<W: Write + Send> Sink for JsonSink<W> {
    fn event(&mut self, e: &Event) {
        if let Ok(v) = serde_json::to_value(e) {
            self.write(v);
        }
    }

    fn recap(&mut self, r: &Recap) {
        if let Ok(mut v) = serde_json::to_value(r) {
            if let Some(obj) = v.as_object_mut() {
                obj.insert("event".into(), "recap".into());
            }
            self.write(v);
        }
    }

    fn note(&mut self, _text: &str) {}
}
