//! Fuzz target: the potentials JSON of `chaincrf infer`
//! (`chaincrf_cli::potentials::parse_potentials`, the parser the binary
//! uses), then the inference the command runs on a chain that parses.
#![no_main]

use chaincrf_core::chain;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = chaincrf_cli::potentials::parse_potentials(data) else {
        return;
    };
    // Keep each run short: the interesting part is the parser.
    if chaincrf_core::Potentials::len(&p) * chaincrf_core::Potentials::num_labels(&p) > 4096 {
        return;
    }
    let _ = chain::log_partition(&p);
    let _ = chain::viterbi(&p);
    let _ = chain::marginals(&p);
    let _ = chain::entropy(&p);
    let _ = chain::kbest(&p, 3);
});
