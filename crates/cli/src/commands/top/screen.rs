//! `perfpy top` on a terminal: the live screen (ratatui), redrawn every interval and at every
//! key.
//!
//! ```text
//! perfpy top  pid 4242 python app.py   last 10 s, by self       999 Hz, 9,870 samples, 0 lost
//! processes ─ all │ 4242 │ 4250 …   (several: Tab picks one)
//! Python functions ─ self total samples function file
//! native code      ─ self total samples function module
//! s/t sort  n native  w window  Tab process  space pause  q quit      new: pid 4301 …
//! ```

use super::live::{self, Live, Snapshot, Sort, View, Window};
use super::{perf_now, Context, Ended};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::time::{Duration, Instant};

/// Runs the screen until q, Ctrl-C, a signal, --duration or perf's end.
pub(super) fn run(ctx: &Context<'_>, live: &mut Live, view: &mut View) -> Ended {
    crate::signals::quiet_stdin_on_hangup();
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(_) => return super::plain::run(ctx, live, view),
    };
    let ended = screen(ctx, live, view, &mut terminal);
    // A terminal that is gone can't be restored; nothing to say about it either.
    let _ = ratatui::try_restore();
    ended
}

fn screen(
    ctx: &Context<'_>,
    live: &mut Live,
    view: &mut View,
    terminal: &mut ratatui::DefaultTerminal,
) -> Ended {
    let every = Duration::from_secs_f64(ctx.args.interval);
    let mut paused = false;
    let mut shown = Shown::default();
    let mut next = Instant::now();
    let mut perf_done = false;
    loop {
        if let Some(end) = ctx.should_end() {
            match end {
                // perf ended by itself (the program exited): the last view stays until q.
                Ended::Done if ctx.args.duration.is_none() => perf_done = true,
                end => return end,
            }
        }
        if Instant::now() >= next {
            ctx.take(live);
            if !paused {
                shown = Shown::of(ctx, live, view);
            }
            next = Instant::now() + every;
        }
        let status = Status {
            paused,
            perf_done,
            news: ctx
                .news
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last()
                .cloned(),
        };
        if terminal
            .draw(|f| super::draw::draw(f, ctx, &shown, view, &status))
            .is_err()
        {
            return Ended::Signal(libc::SIGHUP); // the terminal is gone
        }
        if crate::signals::stdin_hung_up() {
            return Ended::Signal(libc::SIGHUP); // the terminal is gone
        }
        let wait = next.saturating_duration_since(Instant::now());
        match event::poll(wait.min(Duration::from_millis(200))) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return Ended::Signal(libc::SIGHUP),
        }
        let Ok(Event::Key(key)) = event::read() else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let before = *view;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ended::Quit,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Ended::Quit
            }
            KeyCode::Char('s') => view.sort = Sort::Own,
            KeyCode::Char('t') => view.sort = Sort::Total,
            KeyCode::Char('n') => view.native = !view.native,
            KeyCode::Char('w') => {
                view.window = match view.window {
                    Window::All => match ctx.args.window {
                        Window::Last(n) => Window::Last(n),
                        Window::All => Window::Last(10),
                    },
                    Window::Last(_) => Window::All,
                }
            }
            KeyCode::Char(' ') | KeyCode::Char('p') => paused = !paused,
            KeyCode::Tab | KeyCode::Right => view.process = pick(&shown, view.process, 1),
            KeyCode::BackTab | KeyCode::Left => view.process = pick(&shown, view.process, -1),
            _ => {}
        }
        if *view != before {
            shown = Shown::of(ctx, live, view);
        }
    }
}

/// The process after (or before) `current` in the processes' row, all of them first.
fn pick(shown: &Shown, current: Option<i32>, step: i32) -> Option<i32> {
    let mut order: Vec<Option<i32>> = vec![None];
    order.extend(
        shown
            .snap
            .processes
            .iter()
            .filter(|p| p.pid != 0)
            .map(|p| Some(p.pid)),
    );
    let at = order.iter().position(|p| *p == current).unwrap_or(0) as i32;
    let n = order.len() as i32;
    order[(at + step).rem_euclid(n) as usize]
}

/// What the screen shows between refreshes.
#[derive(Default)]
pub(super) struct Shown {
    pub(super) snap: Snapshot,
    /// Processes recorded without Python names, and why.
    pub(super) unnamed: std::collections::HashMap<i32, String>,
    pub(super) samples: u64,
    pub(super) lost: u64,
    pub(super) frequency: Option<u64>,
    pub(super) waiting: bool,
}

impl Shown {
    fn of(ctx: &Context<'_>, live: &Live, view: &View) -> Shown {
        let rows = ctx.args.top.max(60);
        let got = ctx.feed.with(|r| {
            let profile = r.profile();
            let weights = live.weights(view.window, perf_now().max(live.newest));
            (
                live::snapshot(profile, &weights, view, rows),
                profile.stats.lost_events,
                profile.frequency,
            )
        });
        let unnamed = ctx
            .session
            .as_ref()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.targets
                    .values()
                    .filter(|t| !t.state.named())
                    .map(|t| (t.pid as i32, t.state.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        match got {
            Some((snap, lost, frequency)) => Shown {
                snap,
                unnamed,
                samples: live.samples,
                lost,
                frequency,
                waiting: false,
            },
            None => Shown {
                waiting: true,
                ..Shown::default()
            },
        }
    }
}

pub(super) struct Status {
    pub(super) paused: bool,
    pub(super) perf_done: bool,
    pub(super) news: Option<String>,
}
