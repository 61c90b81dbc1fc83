//! Drawing `perfpy top`'s screen (ratatui): the header, the processes, the Python and native
//! tables, the keys.

use super::live::{Line, Snapshot, Sort, View};
use super::screen::{Shown, Status};
use super::Context;
use crate::report::output::wall::duration;
use crate::report::profile::tables::pct;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

pub(super) fn draw(f: &mut Frame, ctx: &Context<'_>, shown: &Shown, view: &View, status: &Status) {
    let s = &shown.snap;
    let several = ctx.args.all || s.processes.iter().filter(|p| p.pid != 0).count() > 1;
    let procs_height = if several {
        (s.processes.len().min(6) + 3) as u16
    } else {
        0
    };
    let [head, procs, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(procs_height),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header(ctx, shown, view, status)), head);
    if several {
        f.render_widget(processes(s, &shown.unnamed, view), procs);
    }
    if shown.waiting {
        f.render_widget(
            Paragraph::new("waiting for perf's first records...").block(Block::bordered()),
            body,
        );
    } else if view.native {
        // The Python functions take what they need, up to 60%; native code the rest.
        let want = (s.python.len() + 3) as u16;
        let py_height = want.min(body.height * 3 / 5).max(4);
        let [py, native] =
            Layout::vertical([Constraint::Length(py_height), Constraint::Fill(1)]).areas(body);
        f.render_widget(functions("Python functions", &s.python, s, true), py);
        f.render_widget(
            functions(
                "native code (self: the sampled instruction was there)",
                &s.native,
                s,
                false,
            ),
            native,
        );
    } else {
        f.render_widget(functions("Python functions", &s.python, s, true), body);
    }
    let keys = "s/t sort  n native  w window  Tab process  space pause  q quit";
    let mut foot_line = vec![Span::styled(keys, Style::new().add_modifier(Modifier::DIM))];
    let perf_said = status.perf_done.then(|| {
        ctx.perf_said
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    });
    if let Some(said) = perf_said.flatten() {
        foot_line.push(Span::raw("   "));
        foot_line.push(Span::raw(said));
    } else if let Some(news) = &status.news {
        foot_line.push(Span::raw("   "));
        foot_line.push(Span::raw(news.clone()));
    }
    f.render_widget(Paragraph::new(TextLine::from(foot_line)), foot);
}

fn header(
    ctx: &Context<'_>,
    shown: &Shown,
    view: &View,
    status: &Status,
) -> Vec<TextLine<'static>> {
    let what = if ctx.args.all {
        "the whole machine".to_string()
    } else if !ctx.args.pid.is_empty() {
        format!(
            "pid {}",
            ctx.args
                .pid
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        ctx.args
            .command
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let selected = match view.process {
        None => String::new(),
        Some(pid) => format!("  [pid {pid}]"),
    };
    let mut first = vec![
        Span::styled("perfpy top", Style::new().bold()),
        Span::raw(format!("  {what}{selected}  ")),
        Span::styled(
            format!(
                "{}, by {}",
                view.window,
                match view.sort {
                    Sort::Own => "self",
                    Sort::Total => "total",
                }
            ),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
    ];
    if status.paused {
        first.push(Span::styled("  PAUSED", Style::new().bold()));
    }
    if status.perf_done {
        first.push(Span::styled(
            "  recording ended (the programs exited): q quits",
            Style::new().bold(),
        ));
    }
    let s = &shown.snap;
    let amount = if s.measure.is_time() {
        duration(s.total)
    } else {
        format!("{} samples", s.total)
    };
    let second = format!(
        "{}{amount} in view, {} samples since the start, {} lost",
        shown
            .frequency
            .map(|f| format!("{f} Hz, "))
            .unwrap_or_default(),
        shown.samples,
        shown.lost,
    );
    vec![TextLine::from(first), TextLine::from(second)]
}

fn processes<'a>(
    s: &'a Snapshot,
    unnamed: &std::collections::HashMap<i32, String>,
    view: &View,
) -> Table<'a> {
    let mut rows = vec![Row::new(vec![
        Cell::from(format!("{:>6.1}%", 100.0)),
        Cell::from(""),
        Cell::from("all processes"),
    ])
    .style(if view.process.is_none() {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new()
    })];
    for p in s.processes.iter().take(5) {
        let style = if view.process == Some(p.pid) {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        let mut interp = if p.interpreter.is_empty() {
            String::new()
        } else {
            format!("  ({})", p.interpreter)
        };
        if let Some(why) = unnamed.get(&p.pid) {
            interp.push_str(&format!("  {why}"));
        }
        rows.push(
            Row::new(vec![
                Cell::from(format!("{:>6.1}%", pct(p.weight, s.all_total))),
                Cell::from(p.pid.to_string()),
                Cell::from(format!("{}{interp}", p.name)),
            ])
            .style(style),
        );
    }
    Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(vec!["share", "pid", "command"]).style(Style::new().bold()))
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(format!("processes ({}; Tab picks one)", s.processes.len())),
    )
}

fn functions<'a>(title: &'a str, lines: &'a [Line], s: &Snapshot, python: bool) -> Table<'a> {
    let time = s.measure.is_time();
    let name_width = lines
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 48) as u16
        + 2;
    let rows: Vec<Row> = lines
        .iter()
        .map(|l| {
            let amount = if time {
                format!("{:.1}", l.own as f64 / 1e6)
            } else {
                l.own.to_string()
            };
            let mut cells = vec![
                Cell::from(format!("{:>5.1}%", pct(l.own, s.total))),
                Cell::from(format!("{:>5.1}%", pct(l.total, s.total))),
                Cell::from(format!("{amount:>9}")),
                Cell::from(l.name.clone()).style(if python {
                    Style::new().bold()
                } else {
                    Style::new()
                }),
                Cell::from(short_path(&l.place)),
            ];
            if time {
                cells.push(Cell::from(l.waits.clone()));
            }
            Row::new(cells)
        })
        .collect();
    let mut header = vec![
        "  self",
        " total",
        if time { "  self ms" } else { "  samples" },
        "function",
        if python { "file" } else { "module" },
    ];
    let mut widths = vec![
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(name_width),
        Constraint::Fill(1),
    ];
    if time {
        header.push("waiting on");
        widths.push(Constraint::Fill(1));
    }
    Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().bold()))
        .block(Block::default().borders(Borders::TOP).title(title))
}

/// A file's path as the screen has room for: its last three parts (`…/apps/telltale.py:15`).
fn short_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() <= 4 {
        path.to_string()
    } else {
        format!("…/{}", parts[parts.len() - 3..].join("/"))
    }
}
