//! The one frame of every `--json` document (docs/json.md): `version`,
//! `command`, and on failure `error` alone.

use serde_json::{json, Value};

/// The schema version.
pub const VERSION: u32 = 1;

/// `body` (an object) with the frame's fields first.
pub fn frame(command: &str, body: Value) -> Value {
    let mut v = json!({"version": VERSION, "command": command});
    if let (Some(out), Value::Object(fields)) = (v.as_object_mut(), body) {
        out.extend(fields);
    }
    v
}

/// Prints `body` framed.
pub fn print(command: &str, body: Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&frame(command, body))?);
    Ok(())
}

/// The document of a failed command.
pub fn error(command: &str, e: &anyhow::Error) -> Value {
    frame(command, json!({"error": format!("{e:#}")}))
}
