//! Prompt templates in the `cell2sentence` package's JSON format:
//! `{"model_input": [variant, ...], "response": [template]}`, with Python `str.format`
//! placeholders (`{cell_sentence}`, `{{` and `}}` for literal braces).
//!
//! Our built-in templates (`resources/prompts/`, our own wording) and any user file in that
//! format (the upstream ones included) load the same way. Which variant an example gets is
//! [`TemplateChoice`]: always the first, a per-example seeded pick, or the package's own
//! sequence (`random.seed(42)`, then `random.choice` per example), so prompts built here equal
//! the package's.

use std::collections::BTreeMap;
use std::path::Path;

use crate::rng::{PythonRandom, mix64};

/// Problems with a template file or with filling one in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The file is not a template of the expected shape.
    #[error("{what}: {message}")]
    Invalid {
        /// The file, or "template".
        what: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A placeholder has no value.
    #[error("the template needs a value for {{{0}}}, which this task does not provide")]
    Missing(String),
}

/// A task's prompt templates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct PromptTemplate {
    /// Variants of the model input (one is picked per example).
    pub model_input: Vec<String>,
    /// The response template (the package's files hold exactly one).
    pub response: Vec<String>,
}

impl PromptTemplate {
    /// Parses a template from JSON text; `what` names it in errors.
    pub fn from_json(text: &str, what: &str) -> Result<Self, TemplateError> {
        let invalid = |message: String| TemplateError::Invalid {
            what: what.to_string(),
            message,
        };
        let t: Self = serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "not a prompt template ({e}); expected {{\"model_input\": [\"...\"], \"response\": [\"...\"]}}"
            ))
        })?;
        if t.model_input.is_empty() {
            return Err(invalid("\"model_input\" lists no template".into()));
        }
        if t.response.is_empty() {
            return Err(invalid("\"response\" lists no template".into()));
        }
        for text in t.model_input.iter().chain(&t.response) {
            placeholders(text).map_err(invalid)?;
        }
        Ok(t)
    }

    /// Reads a template file.
    pub fn from_file(path: &Path) -> Result<Self, TemplateError> {
        let what = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TemplateError::Invalid {
            what: what.clone(),
            message: format!("cannot read it ({e})"),
        })?;
        Self::from_json(&text, &what)
    }
}

/// The placeholder names in `template`, in order of appearance (with repeats).
pub fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    walk(template, |piece| {
        if let Piece::Field(name) = piece {
            names.push(name.to_string());
        }
    })?;
    Ok(names)
}

/// Fills `template`'s placeholders from `values`, as Python's `str.format(**values)` does for
/// plain `{name}` fields.
pub fn fill(template: &str, values: &BTreeMap<&str, &str>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut missing = None;
    walk(template, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Field(name) => match values.get(name) {
            Some(v) => out.push_str(v),
            None => {
                missing.get_or_insert_with(|| name.to_string());
            }
        },
    })
    .map_err(|message| TemplateError::Invalid {
        what: "template".into(),
        message,
    })?;
    match missing {
        Some(name) => Err(TemplateError::Missing(name)),
        None => Ok(out),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// Splits a format string into literal text and `{name}` fields; `{{` and `}}` are literal
/// braces. Conversions and format specs (`{x!r}`, `{x:>5}`) and positional fields are refused:
/// no template of the package uses them.
fn walk<'a>(template: &'a str, mut emit: impl FnMut(Piece<'a>)) -> Result<(), String> {
    let bytes = template.as_bytes();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                emit(Piece::Text(&template[start..=i]));
                i += 2;
                start = i;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                emit(Piece::Text(&template[start..=i]));
                i += 2;
                start = i;
            }
            b'{' => {
                emit(Piece::Text(&template[start..i]));
                let end = template[i..]
                    .find('}')
                    .map(|k| i + k)
                    .ok_or_else(|| format!("a '{{' at byte {i} is never closed"))?;
                let name = &template[i + 1..end];
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    return Err(format!(
                        "'{{{name}}}' is not a placeholder; use {{name}}, or {{{{ and }}}} for braces"
                    ));
                }
                emit(Piece::Field(name));
                i = end + 1;
                start = i;
            }
            b'}' => return Err(format!("a lone '}}' at byte {i}; write }}}} for a brace")),
            _ => i += 1,
        }
    }
    emit(Piece::Text(&template[start..]));
    Ok(())
}

/// Which model-input variant each example gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemplateChoice {
    /// Always the first variant.
    First,
    /// A pick per example from a hash of (seed, example key): independent of the other
    /// examples, so a subset keeps its prompts.
    #[default]
    Seeded,
    /// The `cell2sentence` package's sequence: `random.seed(42)` once, then `random.choice`
    /// per example in order.
    Reference,
}

impl std::str::FromStr for TemplateChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "first" => Ok(Self::First),
            "seeded" => Ok(Self::Seeded),
            "reference" => Ok(Self::Reference),
            other => Err(format!(
                "unknown template choice '{other}'; use first, seeded or reference"
            )),
        }
    }
}

/// Picks variants in the order examples are built.
#[derive(Clone)]
pub struct TemplatePicker {
    choice: TemplateChoice,
    seed: u64,
    python: PythonRandom,
}

impl std::fmt::Debug for TemplatePicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplatePicker")
            .field("choice", &self.choice)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// The seed the package gives `random.seed` before formatting.
pub const REFERENCE_SEED: u64 = 42;

impl TemplatePicker {
    /// A picker for `choice`; `seed` keys the seeded choice.
    pub fn new(choice: TemplateChoice, seed: u64) -> Self {
        Self {
            choice,
            seed,
            python: PythonRandom::new(REFERENCE_SEED),
        }
    }

    /// The variant (of `n` ≥ 1) for the next example, keyed by `key` (e.g. a hash of the cell
    /// id) for the seeded choice.
    pub fn pick(&mut self, n: usize, key: u64) -> usize {
        match self.choice {
            TemplateChoice::First => 0,
            TemplateChoice::Seeded => (mix64(self.seed ^ mix64(key)) % n.max(1) as u64) as usize,
            TemplateChoice::Reference => self.python.choice_index(n.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn fills_placeholders_like_str_format() {
        let v = values(&[("cell_type", "B cell"), ("n", "3")]);
        assert_eq!(fill("{cell_type}.", &v).unwrap(), "B cell.");
        assert_eq!(fill("{{literal}} {n} {n}", &v).unwrap(), "{literal} 3 3");
        assert_eq!(fill("no fields", &v).unwrap(), "no fields");
        assert_eq!(
            fill("{tissue}", &v).unwrap_err(),
            TemplateError::Missing("tissue".into())
        );
        assert!(fill("{cell_type", &v).is_err());
        assert!(fill("a } b", &v).is_err());
        assert!(fill("{0}", &v).is_err());
        assert!(fill("{x:>5}", &v).is_err());
        assert_eq!(
            placeholders("{a} and {b} and {a}").unwrap(),
            vec!["a", "b", "a"]
        );
    }

    #[test]
    fn template_files_are_checked() {
        let ok = PromptTemplate::from_json(
            r#"{"model_input": ["Cells: {cell_sentence}"], "response": ["{cell_type}."]}"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(ok.model_input.len(), 1);
        for bad in [
            r#"{"model_input": [], "response": ["x"]}"#,
            r#"{"model_input": ["x"], "response": []}"#,
            r#"{"prompts": ["x"]}"#,
            r#"{"model_input": ["{oops"], "response": ["x"]}"#,
            "not json",
        ] {
            let err = PromptTemplate::from_json(bad, "t.json").unwrap_err();
            assert!(err.to_string().starts_with("t.json: "), "{err}");
        }
    }

    #[test]
    fn reference_choice_follows_the_packages_random_sequence() {
        // The package's first cell-type-prediction picks over its 15 variants.
        let mut p = TemplatePicker::new(TemplateChoice::Reference, 0);
        let picks: Vec<usize> = (0..8).map(|k| p.pick(15, k)).collect();
        assert_eq!(picks, [10, 1, 0, 11, 4, 3, 3, 2]);
        let mut first = TemplatePicker::new(TemplateChoice::First, 0);
        assert_eq!(first.pick(15, 7), 0);
    }

    #[test]
    fn seeded_choice_depends_on_the_example_only() {
        let mut a = TemplatePicker::new(TemplateChoice::Seeded, 9);
        let mut b = TemplatePicker::new(TemplateChoice::Seeded, 9);
        let forward: Vec<usize> = (0..50).map(|k| a.pick(4, k)).collect();
        let backward: Vec<usize> = (0..50).rev().map(|k| b.pick(4, k)).collect();
        assert_eq!(forward, backward.into_iter().rev().collect::<Vec<_>>());
        assert!(forward.iter().all(|&i| i < 4));
        assert!(
            (0..4).all(|i| forward.contains(&i)),
            "every variant is used"
        );
    }
}
