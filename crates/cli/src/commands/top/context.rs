//! What top's views look at: the feed, the session's processes, when to end.

use super::feed::Feed;
use super::live::Live;
use super::Ended;
use crate::cli::TopArgs;
use crate::signals;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the views look at.
pub(super) struct Context<'a> {
    pub args: &'a TopArgs,
    pub feed: &'a Feed,
    pub started: Instant,
    /// New processes found meanwhile, to show.
    pub news: &'a Mutex<Vec<String>>,
    /// perf's own messages (its standard error), with a screen.
    pub perf_said: &'a Mutex<Vec<String>>,
    pub session: Option<Arc<Mutex<crate::attach::session::Session>>>,
}

impl Context<'_> {
    /// Takes the samples read since the last time into `live`, with what the session knows
    /// of their processes (interpreter, names).
    pub fn take(&self, live: &mut Live) {
        self.feed.take(live);
        let Some(session) = &self.session else {
            return;
        };
        let s = session.lock().unwrap_or_else(|e| e.into_inner());
        self.feed.with(|r| {
            let profile = r.profile_mut();
            for t in s.targets.values() {
                let info = profile.processes.entry(t.pid as i32).or_default();
                info.pid = t.pid as i32;
                if info.cmdline.is_empty() {
                    info.cmdline = t.cmdline.clone();
                }
                info.interpreter = t.interpreter.clone();
                info.names = t.state.to_string();
            }
        });
    }

    /// The session's processes recorded without Python names.
    pub fn names_off(&self) -> Vec<i32> {
        self.session
            .as_ref()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.targets
                    .values()
                    .filter(|t| !t.state.named())
                    .map(|t| t.pid as i32)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Why the view should end now, if it should.
    pub fn should_end(&self) -> Option<Ended> {
        if let Some(s) = signals::caught_signal() {
            return Some(Ended::Signal(s));
        }
        if self.feed.ended.load(Ordering::SeqCst) {
            return Some(Ended::Done);
        }
        match self.args.duration {
            Some(d) if self.started.elapsed().as_secs_f64() >= d => Some(Ended::Done),
            _ => None,
        }
    }
}
