//! The jieba-rs side of chaincrf's benchmark harness (`python3 -m bench`).
//!
//! Segments a file line by line with jieba-rs (default dictionary, HMM on),
//! one output line per input line, words separated by a space, and prints one
//! JSON object on standard output: dictionary load seconds, characters, and
//! segmentation seconds.
//!
//! ```text
//! jieba-peer INPUT OUTPUT
//! ```

use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

fn run(input: &str, output: &str) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let jieba = jieba_rs::Jieba::new();
    let load_seconds = started.elapsed().as_secs_f64();
    let reader = BufReader::new(File::open(input).map_err(|e| format!("{input}: {e}"))?);
    let mut out = BufWriter::new(File::create(output).map_err(|e| format!("{output}: {e}"))?);
    let started = Instant::now();
    let mut chars = 0usize;
    for line in reader.lines() {
        let line = line?;
        let line = line.trim_end_matches('\r');
        chars += line.chars().count();
        let words: Vec<&str> = jieba.cut(line, true).into_iter().map(|t| t.word).collect();
        out.write_all(words.join(" ").as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"load_seconds": load_seconds, "chars": chars, "seconds": seconds})
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: jieba-peer INPUT OUTPUT");
        std::process::exit(2);
    };
    if let Err(e) = run(input, output) {
        eprintln!("jieba-peer: error: {e}");
        std::process::exit(1);
    }
}
