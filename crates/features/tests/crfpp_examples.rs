//! Smoke test on the CRF++ example data sets, when `CHAINCRF_DATA` points at
//! the shared data directory (it holds `crfpp-examples/{chunking,basenp,JapaneseNE,seg}`).
//! Without the variable the test prints why it is skipped and passes.

use chaincrf_features::{read_column_data, Evaluation, FeatureExtractor, TemplateExtractor, Templates};
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

#[test]
fn crfpp_examples_parse_and_extract() {
    let Some(root) = std::env::var_os("CHAINCRF_DATA") else {
        eprintln!("skipped: set CHAINCRF_DATA to the shared data directory to run this test");
        return;
    };
    let base = PathBuf::from(root).join("crfpp-examples");
    for name in ["chunking", "basenp", "JapaneseNE", "seg"] {
        let dir = base.join(name);
        let tpath = dir.join("template");
        let tfile = File::open(&tpath).unwrap_or_else(|e| panic!("{}: {e}", tpath.display()));
        let templates =
            Templates::read(BufReader::new(tfile), &tpath.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!templates.unigrams().is_empty(), "{name}: no unigram template");
        assert!(templates.has_plain_bigram(), "{name}: expected a plain B line");
        for file in ["train.data", "test.data"] {
            let path = dir.join(file);
            let shown = path.display().to_string();
            let f = File::open(&path).unwrap_or_else(|e| panic!("{shown}: {e}"));
            let seqs = read_column_data(BufReader::new(f), &shown).unwrap_or_else(|e| panic!("{e}"));
            assert!(!seqs.is_empty(), "{shown}: no sequence");
            let columns = seqs[0].rows[0].len();
            let ex = TemplateExtractor::new(templates.clone(), columns - 1).unwrap_or_else(|e| panic!("{shown}: {e}"));
            let (mut tokens, mut attrs) = (0usize, 0usize);
            let mut eval = Evaluation::new();
            for seq in &seqs {
                for t in 0..ex.len(&seq.rows) {
                    ex.extract(&seq.rows, t, &mut |_| attrs += 1);
                }
                tokens += seq.len();
                let labels: Vec<&str> = seq.column(columns - 1).collect();
                eval.add_sequence(&labels, &labels).unwrap();
            }
            let s = eval.summary();
            assert_eq!(s.correct_tokens, tokens);
            assert_eq!(s.chunks.correct, s.chunks.gold);
            assert_eq!(attrs, tokens * templates.unigrams().len());
            eprintln!(
                "{name}/{file}: {} sequences, {tokens} tokens, {columns} columns, {attrs} unigram attributes, {} chunks",
                seqs.len(),
                s.chunks.gold
            );
        }
    }
}
