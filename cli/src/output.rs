//! How every command prints: `--output table` (the default: aligned tables, key/value lists,
//! sentences, a spinner while waiting) or `--output json` (JSON on stdout, nothing else there).

use std::time::Duration;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use solana_sdk::signature::Signature;

/// How results are printed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Human-readable tables and lines.
    #[value(alias = "text")]
    Table,
    /// JSON, for scripts.
    Json,
}

/// Prints `value` as pretty JSON, or runs `table` for people.
pub fn print(output: Output, value: Value, table: impl FnOnce()) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        ),
        Output::Table => table(),
    }
}

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header.iter().map(|s| s.to_string()).collect()));
    for r in rows {
        println!("{}", line(r));
    }
}

/// A JSON value as a person reads it: strings without quotes.
pub fn plain(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

/// Prints the key/value pairs of a JSON object, keys aligned.
pub fn kv(value: &Value) {
    if let Some(map) = value.as_object() {
        let w = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in map {
            println!("{k:<w$}  {}", plain(v));
        }
    }
}

/// Reports a confirmed transaction `what` with its signature and `extra` fields.
pub fn done(output: Output, what: &str, sig: &Signature, extra: Value) {
    let mut v = json!({ "ok": true, "signature": sig.to_string() });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    print(output, v, || {
        println!("{what}: done ({sig})");
        if let Some(e) = extra.as_object() {
            for (k, val) in e {
                println!("  {k}: {}", plain(val));
            }
        }
    });
}

/// A spinner on stderr while something is waited for (table output only); cleared when
/// dropped or [`Spinner::stop`]ped.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Starts a spinner saying `msg`.
    pub fn start(output: Output, msg: impl Into<String>) -> Self {
        Self((output == Output::Table).then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.set_message(msg.into());
            pb.enable_steady_tick(Duration::from_millis(100));
            pb
        }))
    }

    /// Says `msg` from now on.
    pub fn set(&self, msg: impl Into<String>) {
        if let Some(pb) = &self.0 {
            pb.set_message(msg.into());
        }
    }

    /// Clears the spinner.
    pub fn stop(self) {}
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(pb) = self.0.take() {
            pb.finish_and_clear();
        }
    }
}
