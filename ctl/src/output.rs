//! Printing results: aligned text tables for people, JSON for scripts.

use serde_json::Value;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Text,
    /// One JSON document.
    Json,
}

/// Prints `json` as JSON, or `rows` under `header` as aligned columns.
pub fn print(format: Format, json: &Value, header: &[&str], rows: &[Vec<String>]) {
    match format {
        Format::Json => println!("{json:#}"),
        Format::Text => print!("{}", table(header, rows)),
    }
}

/// `rows` under `header`, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["n1".to_string(), "alive".to_string()],
            vec!["node-22".to_string(), "down".to_string()],
        ];
        assert_eq!(
            table(&["ID", "STATE"], &rows),
            "ID       STATE\nn1       alive\nnode-22  down\n"
        );
    }
}
