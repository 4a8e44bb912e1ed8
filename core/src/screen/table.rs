//! A screen report as tables: one row per [`EffectRow`] or [`SelectivityRow`], with the
//! columns named as the fields, ready for [`crate::io::export::write_table`] (CSV or Parquet).
//! The app's export and `screen report --out` write the same frames.

use super::genes::TopGenes;
use super::report::{EffectRow, SelectivityRow};
use polars::prelude::*;
use std::collections::BTreeMap;

fn text<'a, R: 'a>(name: &str, rows: &'a [R], f: impl Fn(&'a R) -> &'a str) -> Column {
    Column::new(name.into(), rows.iter().map(f).collect::<Vec<&str>>())
}

fn number<R>(name: &str, rows: &[R], f: impl Fn(&R) -> f64) -> Column {
    Column::new(name.into(), rows.iter().map(f).collect::<Vec<f64>>())
}

/// The effects: `perturbation`, `context`, `set` (text), `n` (u64), `mean`, `control_mean`,
/// `effect`, `z`, `t`, `p`, `q` (f64) and `hit` (bool), in the rows' order.
pub fn effects_frame(rows: &[EffectRow]) -> DataFrame {
    let columns = vec![
        text("perturbation", rows, |r| &r.perturbation),
        text("context", rows, |r| &r.context),
        text("set", rows, |r| &r.set),
        Column::new(
            "n".into(),
            rows.iter().map(|r| r.n as u64).collect::<Vec<u64>>(),
        ),
        number("mean", rows, |r| r.mean),
        number("control_mean", rows, |r| r.control_mean),
        number("effect", rows, |r| r.effect),
        number("z", rows, |r| r.z),
        number("t", rows, |r| r.t),
        number("p", rows, |r| r.p),
        number("q", rows, |r| r.q),
        Column::new(
            "hit".into(),
            rows.iter().map(|r| r.hit).collect::<Vec<bool>>(),
        ),
    ];
    DataFrame::new(rows.len(), columns).expect("every column has one value per row")
}

/// The context selectivity: `perturbation`, `set`, `context_a`, `context_b` (text),
/// `selectivity`, `t`, `p`, `q` (f64), in the rows' order.
pub fn selectivity_frame(rows: &[SelectivityRow]) -> DataFrame {
    let columns = vec![
        text("perturbation", rows, |r| &r.perturbation),
        text("set", rows, |r| &r.set),
        text("context_a", rows, |r| &r.context_a),
        text("context_b", rows, |r| &r.context_b),
        number("selectivity", rows, |r| r.selectivity),
        number("t", rows, |r| r.t),
        number("p", rows, |r| r.p),
        number("q", rows, |r| r.q),
    ];
    DataFrame::new(rows.len(), columns).expect("every column has one value per row")
}

/// The top predicted genes: `perturbation`, `context`, `direction` (`up` or `down`), `rank`
/// (u32, 1 = moved most), `gene` (text) and `shift` (f64), by perturbation and context.
pub fn top_genes_frame(genes: &BTreeMap<(String, String), TopGenes>) -> DataFrame {
    let mut rows: Vec<(&str, &str, &str, u32, &str, f64)> = Vec::new();
    for ((p, c), t) in genes {
        for (direction, list) in [("up", &t.up), ("down", &t.down)] {
            for (k, g) in list.iter().enumerate() {
                rows.push((p, c, direction, k as u32 + 1, &g.gene, g.shift));
            }
        }
    }
    let columns = vec![
        text("perturbation", &rows, |r| r.0),
        text("context", &rows, |r| r.1),
        text("direction", &rows, |r| r.2),
        Column::new(
            "rank".into(),
            rows.iter().map(|r| r.3).collect::<Vec<u32>>(),
        ),
        text("gene", &rows, |r| r.4),
        number("shift", &rows, |r| r.5),
    ];
    DataFrame::new(rows.len(), columns).expect("every column has one value per row")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::export::write_table;

    fn effect(p: &str, c: &str, effect: f64, hit: bool) -> EffectRow {
        EffectRow {
            perturbation: p.into(),
            context: c.into(),
            set: "MHC".into(),
            n: 4,
            mean: effect + 1.0,
            control_mean: 1.0,
            effect,
            z: effect / 2.0,
            t: 3.0,
            p: 0.01,
            q: 0.02,
            hit,
        }
    }

    #[test]
    fn effects_have_one_row_per_effect_and_named_columns() {
        let rows = [
            effect("up", "A", 2.0, true),
            effect("down", "B", -1.0, false),
        ];
        let df = effects_frame(&rows);
        assert_eq!(df.height(), 2);
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "perturbation",
                "context",
                "set",
                "n",
                "mean",
                "control_mean",
                "effect",
                "z",
                "t",
                "p",
                "q",
                "hit"
            ]
        );
        let col = |n: &str| df.column(n).unwrap().as_materialized_series().clone();
        assert_eq!(col("perturbation").str().unwrap().get(1), Some("down"));
        assert_eq!(col("effect").f64().unwrap().get(0), Some(2.0));
        assert_eq!(col("z").f64().unwrap().get(1), Some(-0.5));
        assert_eq!(col("n").u64().unwrap().get(0), Some(4));
        assert_eq!(col("hit").bool().unwrap().get(0), Some(true));
        assert_eq!(col("hit").bool().unwrap().get(1), Some(false));
        assert_eq!(effects_frame(&[]).height(), 0);
    }

    #[test]
    fn selectivity_rows_write_as_csv() {
        let rows = [SelectivityRow {
            perturbation: "up".into(),
            set: "MHC".into(),
            context_a: "A".into(),
            context_b: "B".into(),
            selectivity: 8.0,
            t: 4.5,
            p: 0.001,
            q: 0.003,
        }];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sel.csv");
        write_table(&path, &mut selectivity_frame(&rows)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "perturbation,set,context_a,context_b,selectivity,t,p,q",
                "up,MHC,A,B,8.0,4.5,0.001,0.003"
            ]
        );
    }
}
