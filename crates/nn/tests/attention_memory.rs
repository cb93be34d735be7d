//! What attention keeps for backward, measured with the counting allocator (installed as
//! this binary's global allocator; one test, since the counts are process-wide): the
//! fused op keeps the output and one log-sum-exp per query, no `[L, S]` matrix, and its
//! backward works a block of queries at a time (less than one `[L, S]` matrix per head
//! in all); composed with dropout, the softmax output and the dropped weights once per
//! head, not the scores and their exponentials besides.

use tapegrad::{clear_buffer_pool, DType, Tensor};
use tapegrad_data::{current_bytes, measure_peak, CountingAllocator};
use tapegrad_nn::functional::scaled_dot_product_attention;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// Bytes allocated while `f` runs that are still allocated after it, with tapegrad's
/// pool of freed buffers emptied on both sides (pooled buffers are not kept by anything).
fn bytes_kept<R>(f: impl FnOnce() -> R) -> (R, usize) {
    clear_buffer_pool();
    let before = current_bytes();
    let r = f();
    clear_buffer_pool();
    (r, current_bytes().saturating_sub(before))
}

#[test]
fn fused_attention_keeps_no_score_matrix_for_backward() {
    // One thread: the measured figures do not depend on scheduling.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool")
        .install(measure);
}

fn measure() {
    let (heads, l, s, e) = (2, 192, 256, 4);
    let score_matrices = heads * l * s * 8; // one f64 [L, S] matrix per head
    let q = Tensor::randn(&[heads, l, e], DType::F64, 1).requires_grad();
    let k = Tensor::randn(&[heads, s, e], DType::F64, 2).requires_grad();
    let v = Tensor::randn(&[heads, s, e], DType::F64, 3).requires_grad();
    let small = 2 * heads * (l + 2 * s) * e * 8; // q, k, v-sized tensors and the output

    // The first call allocates what stays for the process (id blocks, pools): not counted.
    drop(
        scaled_dot_product_attention(&q, &k, &v, None, true, None, None)
            .sum()
            .backward(),
    );
    let (out, kept) =
        bytes_kept(|| scaled_dot_product_attention(&q, &k, &v, None, true, None, None));
    eprintln!("attention keeps {kept} bytes; one [L, S] matrix per head is {score_matrices}");
    // The output [heads, L, E] and the log-sum-exps [heads, L], f64.
    let out_and_lse = heads * l * (e + 1) * 8;
    assert!(
        kept >= out_and_lse && kept <= small,
        "attention keeps {kept} bytes: expected the output and log-sum-exps ({out_and_lse}) and small tensors (at most {small}), no [L, S] matrix ({score_matrices})"
    );

    // The same attention composed of matmul and the plain softmax keeps the exponentials
    // and the softmax output: the measurement tells the two apart.
    let (reference, composed) = bytes_kept(|| {
        let mask = tapegrad_nn::AttnMask::causal(l, s, DType::F64);
        q.mul_scalar(0.5)
            .matmul(&k.transpose(-1, -2))
            .add(&mask.to_additive(DType::F64))
            .softmax(-1)
            .matmul(&v)
    });
    eprintln!("the composed softmax keeps {composed} bytes");
    assert!(
        composed >= 2 * score_matrices,
        "composed attention keeps {composed} bytes"
    );
    drop(reference);

    // With dropout, the dropped weights are kept too (not the mask: backward draws it
    // again from its seed).
    let dropout = Some(tapegrad_nn::AttnDropout { p: 0.25, seed: 4 });
    let (dropped, kept_with_dropout) =
        bytes_kept(|| scaled_dot_product_attention(&q, &k, &v, None, true, dropout, None));
    eprintln!("with dropout, attention keeps {kept_with_dropout} bytes");
    assert!(
        kept_with_dropout >= 2 * score_matrices && kept_with_dropout <= 2 * score_matrices + small,
        "with dropout, attention keeps {kept_with_dropout} bytes: expected two [L, S] matrices per head"
    );
    drop(dropped);

    let (_, backward_peak) = measure_peak(|| out.sum().backward());
    eprintln!(
        "backward peak above the forward state: {backward_peak} bytes = {:.2} [L, S] matrices per head",
        backward_peak as f64 / score_matrices as f64
    );
    // Backward's working memory: the gradients of q, k and v, and per thread the weights
    // and their gradient for one block of 64 queries (2 x 64 x S of the 2 x L x S here).
    let blocks = 2 * 64 * s * 8;
    assert!(
        backward_peak <= blocks + 4 * small,
        "backward peaks at {backward_peak} bytes above the forward state (one [L, S] matrix per head is {score_matrices})"
    );
}
