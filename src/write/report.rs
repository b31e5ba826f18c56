//! The table `panmount uploads` prints: one row per upload in the journal.

use super::{Journal, Record};

pub fn table(journal: &Journal, records: &[Record]) -> String {
    if records.is_empty() {
        return "no pending uploads\n".to_string();
    }
    let mut out = format!("{:<8} {:>12} {:>8}  {:<40} LAST ERROR\n", "STATE", "SIZE", "PROGRESS", "PATH");
    for r in records {
        let running = journal.running(&r.id);
        let state = match (&running, r.failed) {
            (_, true) => "failed",
            (Some(_), _) => "running",
            (None, _) => "pending",
        };
        let progress = match running {
            Some(run) if r.size > 0 => format!("{:.0}%", run.sent.min(r.size) as f64 * 100.0 / r.size as f64),
            _ => "-".to_string(),
        };
        let error = r.last_error.as_deref().unwrap_or("");
        out.push_str(&format!("{state:<8} {:>12} {progress:>8}  {:<40} {error}\n", r.size, r.shown_path()));
    }
    out
}
