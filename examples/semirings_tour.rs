//! A tour of the semirings on one small, hand-made chain.
//!
//! The chain dynamic program is written once; which semiring it runs in decides
//! what "sum over all label paths" means. This example builds a 5-position
//! BIO-style chain by hand (with the transition O → I forbidden and one label
//! forced), then asks the same potentials for log Z, marginals, the best path,
//! the 3 best paths, the entropy, the number of allowed paths and a few samples
//! — first through the convenience functions, then by running the raw forward
//! pass in each semiring, so you can see they are the same computation.
//!
//! Run: `cargo run --release --example semirings_tour`

use chaincrf::core::chain::{self, ChainWorkspace};
use chaincrf::core::{AllowedLabels, Boolean, Constrained, Counting, DenseChain, Entropy, KBest, Log, MaxPlus, Prob};
use nalgebra::dmatrix;
use rand::rngs::StdRng;
use rand::SeedableRng;

const LABELS: [&str; 3] = ["B", "I", "O"];
const TOKENS: [&str; 5] = ["the", "New", "York", "Times", "said"];

fn show(path: &[usize]) -> String {
    path.iter().map(|&y| LABELS[y]).collect::<Vec<_>>().join(" ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Emission scores: one row per token, one column per label (B, I, O).
    let emissions = dmatrix![
        -0.5, -2.0,  1.5;   // the
         1.2,  0.3, -0.2;   // New
         0.2,  1.0,  0.1;   // York
         0.4,  0.6,  0.3;   // Times
        -1.0, -1.5,  2.0    // said
    ];
    // Transition scores from row label to column label.
    let transitions = dmatrix![
        -0.5,  1.0,  0.0;   // B → B, I, O
        -0.2,  0.5,  0.0;   // I → …
         0.3,  0.0,  0.2    // O → …
    ];
    let mut p = DenseChain::new(emissions, transitions)?.with_start(&[0.0, -1.0, 0.0])?;
    // BIO grammar: I never follows O. (Starting with I is only penalized, by
    // the start score −1 above, so the transition rule shows on its own.)
    p.forbid_transition(2, 1);
    println!("tokens: {}", TOKENS.join(" "));

    // The convenience functions, each one forward (and maybe backward) pass.
    let log_z = chain::log_partition(&p)?;
    let best = chain::viterbi(&p)?;
    println!("\nlog Z                 = {log_z:.6}");
    println!(
        "Viterbi               = {}  (score {:.4}, probability {:.4})",
        show(&best.labels),
        best.score,
        (best.score - log_z).exp()
    );
    for (r, path) in chain::kbest(&p, 3)?.iter().enumerate() {
        println!("  #{}: {}  (score {:.4})", r + 1, show(&path.labels), path.score);
    }
    println!("entropy H(y|x)        = {:.6} nats", chain::entropy(&p)?);
    println!(
        "allowed paths         = {:.0} of 3^5 = 243",
        chain::count_paths(&p)?.exp()
    );
    let m = chain::marginals(&p)?;
    println!("marginals P(y_t = label):");
    for (t, token) in TOKENS.iter().enumerate() {
        println!(
            "  {token:>5}  B {:.3}  I {:.3}  O {:.3}",
            m[(t, 0)],
            m[(t, 1)],
            m[(t, 2)]
        );
    }
    let mut rng = StdRng::seed_from_u64(7);
    println!("samples from P(y|x):");
    for path in chain::sample(&p, 4, &mut rng)? {
        println!("  {}", show(&path));
    }

    // The same chain sums, by running the one generic forward pass per semiring.
    // A chain sum is a value plus the log-scale factored out while normalizing.
    println!("\nthe raw forward pass in each semiring:");
    let log = ChainWorkspace::<Log>::new().forward(&p)?;
    println!("  Log       ⊕ = log-sum-exp, ⊗ = +  → {:.6} (log Z)", log.score());
    let prob = ChainWorkspace::<Prob>::new().forward(&p)?;
    println!(
        "  Prob      ⊕ = +, ⊗ = ×            → {:.6} × e^{:.6} (Z, scaled)",
        prob.value.0, prob.log_scale
    );
    let max = ChainWorkspace::<MaxPlus>::new().forward(&p)?;
    println!("  MaxPlus   ⊕ = max, ⊗ = +          → {:.4} (best score)", max.score());
    let top3 = ChainWorkspace::<KBest<3>>::new().forward(&p)?;
    let shifted: Vec<String> = top3
        .value
        .0
        .iter()
        .map(|s| format!("{:.4}", s + top3.log_scale))
        .collect();
    println!(
        "  KBest<3>  ⊕ = top-3 merge         → [{}] (3 best scores)",
        shifted.join(", ")
    );
    let ent = ChainWorkspace::<Entropy>::new().forward(&p)?;
    println!(
        "  Entropy   expectation semiring    → log Z {:.6}, H {:.6}",
        ent.value.log_weight + ent.log_scale,
        ent.value.entropy
    );
    let count = ChainWorkspace::<Counting>::new().forward(&p)?;
    println!(
        "  Counting  ⊕ = +, ⊗ = × on 0/1     → {:.0} paths",
        count.log_value().exp()
    );
    let any = ChainWorkspace::<Boolean>::new().forward(&p)?;
    println!("  Boolean   ⊕ = or, ⊗ = and         → {}", any.value.0);

    // A forced label is just −∞ emissions for the other labels; wrapping the
    // potentials in `Constrained` does it without copying them.
    let mut allowed = AllowedLabels::all(TOKENS.len(), LABELS.len());
    allowed.force(3, 2)?; // "Times" must be O
    let forced = Constrained::new(&p, &allowed)?;
    let best_forced = chain::viterbi(&forced)?;
    println!(
        "\nwith \"Times\" forced to O: Viterbi = {}  (score {:.4}), {:.0} paths left, \
         P(constraint holds) = {:.4}",
        show(&best_forced.labels),
        best_forced.score,
        chain::count_paths(&forced)?.exp(),
        (chain::log_partition(&forced)? - log_z).exp()
    );
    Ok(())
}
