//! Exports of a screen's report: the effects and the selectivity as CSV or Parquet (chosen by
//! the file name), through the core's table builders and atomic writer.

use std::path::Path;

use c2s_core::io::export::write_table;
use c2s_core::screen::report::Report;
use c2s_core::screen::table::{effects_frame, selectivity_frame};

/// Which table of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportTable {
    /// One row per perturbation × context × set.
    Effects,
    /// One row per perturbation × set × pair of contexts.
    Selectivity,
}

impl ReportTable {
    /// The default file name offered.
    pub fn file_name(self) -> &'static str {
        match self {
            ReportTable::Effects => "screen-effects.csv",
            ReportTable::Selectivity => "screen-selectivity.csv",
        }
    }
}

/// Writes `table` of `report` to `path` (`.csv` or `.parquet`); returns what was written.
pub fn write_report(report: &Report, table: ReportTable, path: &Path) -> c2s_core::Result<String> {
    let (mut frame, what) = match table {
        ReportTable::Effects => (effects_frame(&report.effects), "effect rows"),
        ReportTable::Selectivity => (selectivity_frame(&report.selectivity), "selectivity rows"),
    };
    write_table(path, &mut frame)?;
    Ok(format!(
        "{} {what} saved to {}",
        frame.height(),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2s_core::screen::report::EffectRow;

    #[test]
    fn effects_are_written_with_the_current_hit_calls() {
        let row = EffectRow {
            perturbation: "d".into(),
            context: "A".into(),
            set: "S".into(),
            n: 1,
            mean: 1.0,
            control_mean: 0.5,
            effect: 0.5,
            z: 1.0,
            t: 2.0,
            p: 0.01,
            q: 0.01,
            hit: true,
        };
        let report = Report {
            effects: vec![row],
            selectivity: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("e.csv");
        let said = write_report(&report, ReportTable::Effects, &csv).unwrap();
        assert!(said.starts_with("1 effect rows saved to"), "{said}");
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(text.lines().nth(1).unwrap().ends_with(",true"), "{text}");
        let parquet = dir.path().join("s.parquet");
        write_report(&report, ReportTable::Selectivity, &parquet).unwrap();
        assert_eq!(&std::fs::read(&parquet).unwrap()[..4], b"PAR1");
        let e = write_report(&report, ReportTable::Effects, &dir.path().join("x.tsv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("use a .parquet or .csv"), "{e}");
    }
}
