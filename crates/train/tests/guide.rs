//! The code of the "Your first model" chapter of docs/guide.md, compiled and run so the
//! chapter cannot rot: an MLP trained on the embedded digits with a hand-written loop.
//! (It lives in this crate because it is the one that depends on data, nn and optim.)

use tapegrad::{no_grad, Tensor};
use tapegrad_data::{digits, DataLoader, Dataset};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::{Linear, Module, Relu, Sequential};
use tapegrad_optim::{Adam, AdamConfig, Optimizer};

/// The chapter's `main`, returning the test accuracy after each epoch.
fn first_model() -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let mut accuracies = Vec::new();
    // --- the guide's code from here ---
    // 1,797 handwritten digits (8 x 8 pixels scaled to [0, 1]) compiled into the crate;
    // a fifth of them is held out to measure accuracy on.
    let (train, test) = digits()?.split(0.2, 0);
    let test_x = Tensor::from_vec(test.features().to_vec(), &[test.len(), 64]);

    // 64 pixels -> 128 hidden units -> 10 scores (logits), one per digit.
    let mut model = Sequential::new()
        .add(Linear::new(64, 128, 1)) // the last argument seeds the initial weights
        .add(Relu)
        .add(Linear::new(128, 10, 2));
    let mut optimizer = Adam::new(
        model.params(),
        AdamConfig {
            lr: 0.01,
            ..AdamConfig::default()
        },
    );
    let loader = DataLoader::new(train, 32).shuffle(0); // a new seeded order every epoch

    for epoch in 0..10 {
        let mut loss_sum = 0.0;
        for batch in loader.epoch(epoch) {
            let logits = model.forward(&batch.x); // [32, 10], recorded on the tape
            let loss = cross_entropy(&logits, &batch.y, &CrossEntropyOptions::default());
            let grads = loss.backward(); // d loss / d (every parameter)
            optimizer.step(&grads); // one Adam update of every parameter
            loss_sum += loss.item() * batch.len() as f64;
        }
        let train_loss = loss_sum / loader.dataset().len() as f64;

        model.eval(); // evaluation mode (matters for dropout and batch norm)
        let predicted = no_grad(|| model.forward(&test_x)).argmax(1, false); // nothing recorded
        model.train();
        let correct = predicted
            .to_vec::<i64>()
            .iter()
            .zip(test.labels())
            .filter(|&(&p, &y)| p == y as i64)
            .count();
        let accuracy = correct as f64 / test.len() as f64;
        println!(
            "epoch {:2}  train loss {train_loss:.4}  test accuracy {accuracy:.4}",
            epoch + 1
        );
        // --- to here ---
        accuracies.push(accuracy);
    }
    Ok(accuracies)
}

#[test]
fn first_model_learns_the_digits() {
    let accuracies = first_model().unwrap();
    assert_eq!(accuracies.len(), 10);
    let last = accuracies[9];
    assert!(last >= 0.93, "test accuracy after 10 epochs: {last}");
    assert!(accuracies[0] < last, "{accuracies:?}");
}
