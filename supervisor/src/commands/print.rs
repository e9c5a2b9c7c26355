//! How commands print, the same way everywhere: `--json` as one JSON
//! document on one line (keys in alphabetical order, absent values as
//! `null`, times in RFC 3339), and tables with a header row and columns
//! as wide as their widest cell.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// Prints `doc` as one line of JSON. A closed stdout ends the command
/// quietly (the process set that up), so a failed write is not an error.
pub fn json(doc: &impl Serialize) -> Result<()> {
    // Through a `Value`, whose objects keep their keys sorted: every
    // command's JSON reads alike, whatever type it came from.
    let value = serde_json::to_value(doc)?;
    let _ = writeln!(std::io::stdout().lock(), "{value}");
    Ok(())
}

/// Rows under a header; columns three spaces apart, the last one not padded.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Leaves out a column (one that says nothing for these rows).
    pub fn without(mut self, column: &str) -> Table {
        if let Some(i) = self.header.iter().position(|h| *h == column) {
            self.header.remove(i);
            for r in &mut self.rows {
                r.remove(i);
            }
        }
        self
    }

    /// The table as text, a line per row, the header first.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 < cells.len() {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 3));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        let _ = std::io::stdout().lock().write_all(self.render().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["NAME", "OWNER", "NOTE"]);
        t.row(vec!["A_VERY_LONG_NAME".into(), "é".into(), String::new()]);
        t.row(vec!["B".into(), "bob".into(), "last".into()]);
        assert_eq!(
            t.render(),
            "NAME               OWNER   NOTE\n\
             A_VERY_LONG_NAME   é\n\
             B                  bob     last\n"
        );
        assert_eq!(
            t.without("OWNER").render(),
            "NAME               NOTE\nA_VERY_LONG_NAME\nB                  last\n"
        );
    }
}
