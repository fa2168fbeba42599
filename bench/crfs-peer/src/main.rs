//! The crfs side of chaincrf's benchmark harness (`python3 -m bench`).
//!
//! crfs 0.4 is a pure-Rust port of CRFsuite with all five of its training
//! algorithms. This binary trains it on a CRFsuite data file and tags with the
//! model it wrote, so the harness can time it as a child process beside
//! python-crfsuite and chaincrf on the same attributes:
//!
//! ```text
//! crfs-peer train ALGORITHM DATA MODEL MAX_ITERATIONS   # 0: the algorithm's default
//! crfs-peer tag MODEL DATA TAGS
//! ```
//!
//! Each prints one JSON object on standard output (item counts and the
//! seconds spent reading, training or tagging). crfs has no progress callback,
//! so there are no per-iteration rows; its own log is left off.

use std::error::Error;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use crfs::train::{PaType, Trainer};
use crfs::{Attribute, Model};

type Result<T> = std::result::Result<T, Box<dyn Error>>;
type Sequence = (Vec<Vec<Attribute>>, Vec<String>);

/// One field of CRFsuite's data format: the name with `\:` and `\\` undone,
/// and the value after the last unescaped `:` (1 when there is none).
fn parse_field(field: &str) -> Result<(String, f64)> {
    let mut name = String::with_capacity(field.len());
    let mut colon = None;
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.push(chars.next().unwrap_or('\\')),
            ':' => {
                colon = Some(name.len());
                name.push(':');
            }
            _ => name.push(c),
        }
    }
    match colon {
        None => Ok((name, 1.0)),
        Some(at) => {
            let value = name[at + 1..]
                .parse()
                .map_err(|_| format!("field {field:?}: no number after the last ':'"))?;
            name.truncate(at);
            Ok((name, value))
        }
    }
}

fn read_data(path: &Path) -> Result<Vec<Sequence>> {
    let file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let (mut items, mut labels) = (Vec::new(), Vec::new());
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            if !items.is_empty() {
                out.push((std::mem::take(&mut items), std::mem::take(&mut labels)));
            }
            continue;
        }
        let mut fields = line.split('\t');
        let label = fields.next().unwrap_or_default();
        labels.push(parse_field(label)?.0);
        let mut attrs = Vec::new();
        for field in fields.filter(|f| !f.is_empty()) {
            let (name, value) = parse_field(field).map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
            attrs.push(Attribute::new(name, value));
        }
        items.push(attrs);
    }
    if !items.is_empty() {
        out.push((items, labels));
    }
    Ok(out)
}

/// The trainer with its iteration cap set unless `cap` is 0. A macro, since the
/// trait bounding crfs's `Trainer<A>` is private to crfs.
macro_rules! capped {
    ($trainer:expr, $cap:expr) => {
        if $cap > 0 {
            $trainer.with_max_iterations($cap)?
        } else {
            $trainer
        }
    };
}

/// Appends the data, trains (see `capped!` for why a macro) and returns the seconds.
macro_rules! fit {
    ($trainer:expr, $data:expr, $model:expr) => {{
        let mut trainer = $trainer;
        for (xs, ys) in $data {
            trainer.append(xs, ys)?;
        }
        let started = Instant::now();
        trainer.train($model)?;
        started.elapsed().as_secs_f64()
    }};
}

fn train(args: &[String]) -> Result<()> {
    let [algorithm, data, model, max_iterations] = args else {
        return Err("usage: crfs-peer train ALGORITHM DATA MODEL MAX_ITERATIONS".into());
    };
    let cap: usize = max_iterations.parse()?;
    let started = Instant::now();
    let data = read_data(Path::new(data))?;
    let read_seconds = started.elapsed().as_secs_f64();
    let model = Path::new(model);
    // CRFsuite's defaults throughout (c2 = 1 for lbfgs and l2sgd), a fixed
    // visiting order for the online algorithms.
    let seconds = match algorithm.as_str() {
        "lbfgs" => fit!(capped!(Trainer::lbfgs().with_c2(1.0)?, cap), &data, model),
        "l2sgd" => {
            let mut t = capped!(Trainer::l2sgd().with_c2(1.0)?, cap);
            t.params_mut().set_shuffle_seed(Some(0));
            fit!(t, &data, model)
        }
        "ap" => {
            let mut t = capped!(Trainer::averaged_perceptron(), cap);
            t.params_mut().set_shuffle_seed(Some(0));
            fit!(t, &data, model)
        }
        "pa" => {
            let mut t = capped!(Trainer::passive_aggressive().with_pa_type(PaType::PaI), cap);
            t.params_mut().set_shuffle_seed(Some(0));
            fit!(t, &data, model)
        }
        "arow" => {
            let mut t = capped!(Trainer::arow(), cap);
            t.params_mut().set_shuffle_seed(Some(0));
            fit!(t, &data, model)
        }
        other => return Err(format!("unknown algorithm {other:?}").into()),
    };
    let items: usize = data.iter().map(|(xs, _)| xs.len()).sum();
    println!(
        "{}",
        serde_json::json!({
            "tool": "crfs",
            "algorithm": algorithm,
            "sequences": data.len(),
            "items": items,
            "read_seconds": read_seconds,
            "seconds": seconds,
            "max_iterations": (cap > 0).then_some(cap),
        })
    );
    Ok(())
}

fn tag(args: &[String]) -> Result<()> {
    let [model, data, tags] = args else {
        return Err("usage: crfs-peer tag MODEL DATA TAGS".into());
    };
    let started = Instant::now();
    let bytes = fs::read(model).map_err(|e| format!("{model}: {e}"))?;
    let model = Model::new(&bytes)?;
    let tagger = model.tagger()?;
    let load_seconds = started.elapsed().as_secs_f64();
    let data = read_data(Path::new(data))?;
    let mut out = BufWriter::new(fs::File::create(tags).map_err(|e| format!("{tags}: {e}"))?);
    let started = Instant::now();
    let mut predicted = Vec::with_capacity(data.len());
    for (xs, _) in &data {
        predicted.push(tagger.tag(xs)?);
    }
    let tag_seconds = started.elapsed().as_secs_f64();
    for labels in &predicted {
        for label in labels {
            writeln!(out, "{label}")?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    let items: usize = data.iter().map(|(xs, _)| xs.len()).sum();
    println!(
        "{}",
        serde_json::json!({"items": items, "load_seconds": load_seconds, "tag_seconds": tag_seconds})
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("train") => train(&args[1..]),
        Some("tag") => tag(&args[1..]),
        _ => Err("usage: crfs-peer train|tag ...".into()),
    };
    if let Err(e) = result {
        eprintln!("crfs-peer: error: {e}");
        std::process::exit(1);
    }
}
