//! The `--input` file of `score`: JSON Lines, each line a whole text to score token by token, or a
//! prompt with continuations whose summed log-probabilities are wanted.

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// One line of a `score --input` file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreLine {
    /// 1-based line number.
    pub line: usize,
    /// The line's `id` (a string or a number), echoed in the output.
    pub id: Value,
    /// What to score.
    pub item: ScoreItem,
}

/// What one line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreItem {
    /// Every token of a text after the first.
    Text(String),
    /// Each continuation after the prompt: the prompt is tokenized with the model's special
    /// tokens and each continuation without, separately (as the cell2sentence package builds
    /// its training examples), and the prompt runs once for all of them.
    Continuations {
        /// The prompt.
        prompt: String,
        /// The continuations (at least one).
        continuations: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    id: Value,
    text: Option<String>,
    prompt: Option<String>,
    continuations: Option<Vec<String>>,
}

/// Reads and checks a `score --input` file (blank lines are skipped); errors name the line.
pub fn read_score_lines(path: &Path) -> Result<Vec<ScoreLine>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out: Vec<ScoreLine> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line = parse(raw, i + 1)
            .map_err(|problem| format!("{} line {}: {problem}", path.display(), i + 1))?;
        if let Some(first) = out.iter().find(|l| l.id == line.id) {
            return Err(format!(
                "{} line {}: id {} was already used on line {}; give every line its own id",
                path.display(),
                line.line,
                line.id,
                first.line
            ));
        }
        out.push(line);
    }
    if out.is_empty() {
        return Err(format!(
            "{} has nothing to score; write one {{\"id\": ..., \"text\": \"...\"}} or \
             {{\"id\": ..., \"prompt\": \"...\", \"continuations\": [\"...\"]}} object per line",
            path.display()
        ));
    }
    Ok(out)
}

fn parse(raw: &str, line: usize) -> Result<ScoreLine, String> {
    let raw: RawLine = serde_json::from_str(raw).map_err(|e| {
        format!(
            "{e}; expected {{\"id\": ..., \"text\": \"...\"}} or {{\"id\": ..., \"prompt\": \
             \"...\", \"continuations\": [\"...\"]}}"
        )
    })?;
    if !matches!(raw.id, Value::String(_) | Value::Number(_)) {
        return Err(format!(
            "\"id\" must be a string or a number, got {}",
            raw.id
        ));
    }
    let item = match (raw.text, raw.prompt, raw.continuations) {
        (Some(text), None, None) if !text.is_empty() => ScoreItem::Text(text),
        (Some(_), None, None) => return Err("\"text\" is empty; give some text".into()),
        (None, Some(prompt), Some(continuations)) => {
            if prompt.is_empty() {
                return Err("\"prompt\" is empty; give some text".into());
            }
            if continuations.is_empty() || continuations.iter().any(String::is_empty) {
                return Err("\"continuations\" must hold one or more non-empty texts".into());
            }
            ScoreItem::Continuations {
                prompt,
                continuations,
            }
        }
        (None, Some(_), None) => {
            return Err("a \"prompt\" needs \"continuations\" (the texts scored after it)".into());
        }
        _ => {
            return Err(
                "give either \"text\", or \"prompt\" with \"continuations\", not both".into(),
            );
        }
    };
    Ok(ScoreLine {
        line,
        id: raw.id,
        item,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<ScoreLine>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, text).unwrap();
        read_score_lines(&path)
    }

    #[test]
    fn reads_texts_and_prompts_with_continuations() {
        let lines = read(
            "{\"id\": 1, \"text\": \"CD3D CD3E\"}\n\n\
             {\"id\": \"b\", \"prompt\": \"Cell:\", \"continuations\": [\" T cell\", \" B cell\"]}\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].item, ScoreItem::Text("CD3D CD3E".into()));
        assert_eq!(lines[1].line, 3);
        assert_eq!(
            lines[1].item,
            ScoreItem::Continuations {
                prompt: "Cell:".into(),
                continuations: vec![" T cell".into(), " B cell".into()]
            }
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("{\"id\": 1}", "line 1: give either"),
            (
                "{\"id\": 1, \"text\": \"a\", \"prompt\": \"b\"}",
                "not both",
            ),
            ("{\"id\": 1, \"prompt\": \"b\"}", "needs \"continuations\""),
            (
                "{\"id\": 1, \"prompt\": \"b\", \"continuations\": []}",
                "one or more",
            ),
            (
                "{\"id\": [1], \"text\": \"a\"}",
                "must be a string or a number",
            ),
            ("{\"id\": 1, \"txt\": \"a\"}", "unknown field `txt`"),
            ("{\"id\": 1, \"text\": \"\"}", "\"text\" is empty"),
            ("not json", "line 1:"),
            (
                "{\"id\": 1, \"text\": \"a\"}\n{\"id\": 1, \"text\": \"b\"}",
                "already used on line 1",
            ),
            ("\n\n", "nothing to score"),
        ];
        for (text, expected) in cases {
            let err = read(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
