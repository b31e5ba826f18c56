//! `panmount offline list --watch`: the task table, refreshed until the downloads are done.
//!
//! Why it stops by itself: the common use is "add a magnet, watch it finish", so once no task
//! is running or pending it says so on stderr and exits 0; `--follow` keeps watching (for tasks
//! added from another device) until Ctrl-C, which also exits 0.
//!
//! Two outputs, because a terminal and a log file want different things:
//! - on a terminal the table is redrawn in place (cursor up, clear to the end), lines cut to the
//!   terminal's width so the cursor arithmetic stays true, with a status line under it;
//! - anywhere else (a pipe, a file, journald) the header is printed once, then only the rows that
//!   changed, so the output is a log of what happened, greppable like `offline list`.
//!
//! Rate limits: one task-list call per `--interval` (at least 1 s; PikPak's limits are not
//! documented, and clients that measured them stay under about 5 calls/s). The driver already
//! backs off on "operation too frequent"; when a call still fails with a transient error the
//! watch says so and doubles its interval (up to a minute) instead of giving up, and returns to
//! the asked interval after the next success.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::drivers::{OfflineTask, OfflineTasks};
use crate::error::Error;

/// The longest wait between two calls after transient failures.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// `--watch` settings.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub interval: Duration,
    /// Keep watching when no task is active.
    pub follow: bool,
}

/// Whether a task may still change: anything but complete or failed (an unknown phase counts as
/// active, so a new server phase never ends the watch early).
fn active(task: &OfflineTask) -> bool {
    !matches!(task.phase.as_str(), "PHASE_TYPE_COMPLETE" | "PHASE_TYPE_ERROR")
}

pub(super) async fn run(tasks: &dyn OfflineTasks, watch: Watch) -> Result<(), Error> {
    let mut screen = Screen::new(std::io::stdout().is_terminal());
    tokio::select! {
        result = refresh_loop(tasks, watch, &mut screen) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn refresh_loop(tasks: &dyn OfflineTasks, watch: Watch, screen: &mut Screen) -> Result<(), Error> {
    let mut interval = watch.interval;
    loop {
        match tasks.list().await {
            Ok(list) => {
                interval = watch.interval;
                let running = list.iter().filter(|t| active(t)).count();
                let status =
                    format!("{} tasks, {running} running; every {} s, Ctrl-C stops", list.len(), interval.as_secs());
                show(&screen.frame(&list, &status));
                if running == 0 && !watch.follow {
                    eprintln!("no offline task is running or pending; stopping (--follow keeps watching)");
                    return Ok(());
                }
            }
            Err(e) if e.is_transient() => {
                interval = (interval * 2).min(MAX_INTERVAL);
                eprintln!("offline list: {e}; trying again in {} s", interval.as_secs());
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(interval).await;
    }
}

fn show(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) ends nothing here: Ctrl-C or the end of the tasks does.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// What has been shown so far, to know what to redraw or print next.
struct Screen {
    tty: bool,
    /// Terminal: lines of the last frame, to move back over.
    drawn: usize,
    /// Elsewhere: the last row printed per task id (`None` before the header is printed).
    printed: Option<HashMap<String, String>>,
}

impl Screen {
    fn new(tty: bool) -> Self {
        Screen { tty, drawn: 0, printed: None }
    }

    /// The text that brings the output up to date with `tasks`.
    fn frame(&mut self, tasks: &[OfflineTask], status: &str) -> String {
        if self.tty { self.redraw(tasks, status, terminal_width()) } else { self.changes(tasks) }
    }

    fn redraw(&mut self, tasks: &[OfflineTask], status: &str, width: Option<usize>) -> String {
        let mut lines = vec![super::header()];
        lines.extend(tasks.iter().map(super::row));
        lines.push(status.to_owned());
        // Move to the start of the previous frame's first line, clear to the end of the screen.
        let mut text = if self.drawn > 0 { format!("\x1b[{}F\x1b[J", self.drawn) } else { String::new() };
        for line in &lines {
            text.push_str(&cut(line, width));
            text.push('\n');
        }
        self.drawn = lines.len();
        text
    }

    fn changes(&mut self, tasks: &[OfflineTask]) -> String {
        let mut text = String::new();
        let printed = self.printed.get_or_insert_with(|| {
            text.push_str(&super::header());
            text.push('\n');
            HashMap::new()
        });
        for task in tasks {
            let row = super::row(task);
            if printed.get(&task.id) != Some(&row) {
                text.push_str(&row);
                text.push('\n');
                printed.insert(task.id.clone(), row);
            }
        }
        text
    }
}

/// `line` cut to `width - 1` characters, so it never wraps (a wrapped line would throw the
/// cursor-up count off).
fn cut(line: &str, width: Option<usize>) -> String {
    match width {
        Some(w) if line.chars().count() >= w => line.chars().take(w.saturating_sub(1)).collect(),
        _ => line.to_owned(),
    }
}

fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; a failure leaves it zeroed.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, phase: &str, progress: u32) -> OfflineTask {
        OfflineTask {
            id: id.into(),
            name: format!("{id}.iso"),
            phase: format!("PHASE_TYPE_{phase}"),
            progress,
            size: Some(100),
            message: String::new(),
        }
    }

    #[test]
    fn a_log_gets_the_header_once_then_only_changed_rows() {
        let mut screen = Screen::new(false);
        let first = screen.frame(&[task("a", "RUNNING", 10), task("b", "RUNNING", 0)], "");
        assert_eq!(first.lines().count(), 3, "{first}");
        assert!(first.starts_with("ID "));
        let second = screen.frame(&[task("a", "RUNNING", 50), task("b", "RUNNING", 0)], "");
        assert_eq!(second.lines().count(), 1, "{second}");
        assert!(second.starts_with("a ") && second.contains(" 50 "), "{second}");
        assert_eq!(screen.frame(&[task("a", "RUNNING", 50), task("b", "RUNNING", 0)], ""), "");
        let new = screen.frame(&[task("a", "COMPLETE", 100), task("b", "RUNNING", 0), task("c", "PENDING", 0)], "");
        assert_eq!(new.lines().count(), 2, "{new}");
    }

    #[test]
    fn a_terminal_gets_the_table_redrawn_in_place() {
        let mut screen = Screen::new(true);
        let first = screen.redraw(&[task("a", "RUNNING", 10)], "1 tasks", Some(200));
        assert!(!first.contains('\x1b') && first.lines().count() == 3, "{first:?}");
        let second = screen.redraw(&[task("a", "RUNNING", 20), task("b", "PENDING", 0)], "2 tasks", Some(200));
        assert!(second.starts_with("\x1b[3F\x1b[J"), "{second:?}");
        assert_eq!(second.lines().count(), 4);
        let third = screen.redraw(&[], "0 tasks", Some(10));
        assert!(third.starts_with("\x1b[4F\x1b[J"), "{third:?}");
        assert!(third.lines().skip(1).all(|l| l.chars().count() <= 9), "{third:?}");
    }

    #[test]
    fn only_complete_and_failed_tasks_are_finished() {
        assert!(
            active(&task("a", "RUNNING", 1)) && active(&task("a", "PENDING", 0)) && active(&task("a", "PAUSED", 0))
        );
        assert!(!active(&task("a", "COMPLETE", 100)) && !active(&task("a", "ERROR", 3)));
    }
}
