//! How results are printed: aligned tables like kubectl's, colour only on a
//! terminal (never with `NO_COLOR`), and `-o json|yaml` for scripts.

use std::io::IsTerminal;

use clap::ValueEnum;
use serde::Serialize;

use crate::failure::CliError;

/// `-o`: the machine-readable forms.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML.
pub fn print_as<T: Serialize>(format: Format, value: &T) -> Result<(), CliError> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml::to_string(value).map_err(|e| e.to_string()),
    }
    .map_err(|e| CliError::internal(format!("cannot print as {format:?}: {e}")))?;
    print!("{text}");
    Ok(())
}

/// Writes `text` to stdout. A reader that went away (`| head`) is not an
/// error worth a message, so a failed write is dropped rather than a panic
/// as `print!` would.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush());
}

/// The name an enum value has in the API (`Succeeded`, `InProgress`), `-` for none.
pub fn word<T: Serialize>(value: Option<&T>) -> String {
    match value.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::String(s))) => s,
        _ => "-".into(),
    }
}

/// Whether to colour what goes to stdout.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour on a terminal unless `NO_COLOR` is set (to anything non-empty).
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { color: !no_color && std::io::stdout().is_terminal() }
    }

    /// No colour (tests compare plain text).
    #[cfg(test)]
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// `text` in the colour that goes with a phase's name: green for success,
    /// red for failure, yellow for what is under way, dim for what has not started.
    pub fn phase(&self, text: &str) -> String {
        self.in_phase_colour(text, text)
    }

    /// `text` (a symbol, a bar) in the colour of the phase `phase`.
    pub fn in_phase_colour(&self, phase: &str, text: &str) -> String {
        let code = match phase {
            "Succeeded" | "Ready" | "Installed" | "Passed" | "Merged" | "Pass" => "32",
            "Failed" | "Rejected" | "Fail" | "Error" | "Degraded" => "31",
            "Running" | "Building" | "Installing" | "Testing" | "Waiting" | "InProgress" | "CleaningUp"
            | "Uninstalling" => "33",
            "Cancelled" | "Skipped" | "Pending" | "Queued" => "2",
            _ => return text.to_string(),
        };
        self.paint(code, text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Rows aligned in columns, three spaces apart, headers in capitals (kubectl's look).
/// Widths count characters as shown, so coloured cells line up too.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(visible_width(cell));
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            line.push_str(cell);
            if i + 1 < columns {
                line.push_str(&" ".repeat(widths[i] - visible_width(cell) + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The width of `text` on screen: characters outside ANSI colour sequences.
pub fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_ignore_colour_codes() {
        let style = Style { color: true };
        let rows = vec![
            vec!["nightly".to_string(), style.phase("Succeeded"), "5/5".to_string()],
            vec!["pr-1".to_string(), style.phase("Failed"), "".to_string()],
        ];
        let text = table(&["NAME", "PHASE", "PROGRESS"], &rows);
        let plain: Vec<String> =
            text.lines().map(|l| l.replace("\x1b[32m", "").replace("\x1b[31m", "").replace("\x1b[0m", "")).collect();
        assert_eq!(plain, vec!["NAME      PHASE       PROGRESS", "nightly   Succeeded   5/5", "pr-1      Failed"]);
    }

    #[test]
    fn no_colour_when_plain() {
        assert_eq!(Style::plain().phase("Failed"), "Failed");
        assert_eq!(Style { color: true }.phase("Failed"), "\x1b[31mFailed\x1b[0m");
    }
}
