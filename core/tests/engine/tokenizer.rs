//! Tokenization of cell sentences with the real GPT-NeoX-20B tokenizer (the Pythia / C2S-Pythia
//! tokenizer) matches the Python tokenizer's ids, recorded by `tools/models/make_fixtures.sh`.
//! Skips when `../shared/data` is absent (a user's clone has none).

use crate::common::fixtures_dir;
use c2s_core::engine::tokenizer::TextTokenizer;
use std::path::PathBuf;

fn shared_tokenizer() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/tokenizers/gpt-neox-20b/tokenizer.json");
    p.exists().then_some(p)
}

#[test]
fn gpt_neox_20b_tokenizer_matches_python_ids() {
    let Some(path) = shared_tokenizer() else {
        c2s_core::test_support::skip(
            "../shared/data/tokenizers/gpt-neox-20b/tokenizer.json is absent",
        );
        return;
    };
    let tok = TextTokenizer::from_file(&path).expect("tokenizer");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("neox20b_tokenization.json")).unwrap(),
    )
    .unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text).unwrap(), expected, "{text:?}");
    }
    // Pythia's logits have 50,304 rows; the tokenizer knows fewer ids, and the sampler must
    // never pick the extra ones.
    assert!(tok.id_bound() <= 50_304);
    assert!(!tok.knows(50_300));
    assert!(tok.knows(0));
}
