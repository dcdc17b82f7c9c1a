//! Output: aligned tables for people (colour only on a terminal, `NO_COLOR` honoured), JSON and
//! YAML for scripts.

use std::io::IsTerminal as _;

use serde::Serialize;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON (stable field names, for scripts).
    Json,
    /// YAML.
    Yaml,
}

/// Whether stdout gets ANSI colours: a terminal, and `NO_COLOR` unset or empty.
pub fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Colours a VM state (green running, yellow paused/transitional, red crashed).
pub fn paint_state(state: &str, colour: bool) -> String {
    if !colour {
        return state.to_owned();
    }
    let code = match state {
        "running" | "ready" => "32",
        "paused" | "suspended" | "starting" | "booting" => "33",
        "crashed" | "failed" => "31",
        _ => return state.to_owned(),
    };
    format!("\x1b[{code}m{state}\x1b[0m")
}

/// Prints a serialisable value as JSON or YAML.
pub fn print_structured<T: Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    let text = match format {
        Format::Yaml => serde_saphyr::to_string(value)?,
        Format::Json | Format::Table => serde_json::to_string_pretty(value)? + "\n",
    };
    print!("{text}");
    Ok(())
}

/// A table: a header and rows of cells, rendered with two spaces between columns.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&'static str]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table. Widths ignore ANSI colour sequences; the last column is not padded.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(visible_len(cell));
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = widths[i] - visible_len(cell) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Length of a string as displayed: characters, without ANSI escape sequences.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Plain-file snapshots (shared with the CLI tests).
#[cfg(test)]
#[path = "../tests/common/snapshot.rs"]
pub(crate) mod snapshot;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_ignore_colour() {
        let mut t = Table::new(&["NAME", "STATE", "IPS"]);
        t.row(vec![
            "web1".into(),
            paint_state("running", true),
            "10.0.2.15".into(),
        ]);
        t.row(vec!["database".into(), "stopped".into(), String::new()]);
        let plain = t.render().replace("\x1b[32m", "").replace("\x1b[0m", "");
        assert_eq!(
            plain,
            "NAME      STATE    IPS\nweb1      running  10.0.2.15\ndatabase  stopped\n"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(paint_state("running", false), "running");
        assert_eq!(paint_state("crashed", true), "\x1b[31mcrashed\x1b[0m");
        assert_eq!(paint_state("stopped", true), "stopped");
    }
}
