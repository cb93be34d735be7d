//! Text for language models: a byte-level tokenizer, an embedded public-domain text,
//! reading UTF-8 files from a folder, a held-out split, and `TextDataset`, fixed-length
//! windows of tokens with next-token targets.

use std::path::{Path, PathBuf};

use tapegrad::Tensor;

use crate::error::io_err;
use crate::{DataError, Dataset};

/// Chapters 1 to 20 of Jane Austen's *Pride and Prejudice* (1813; public domain), as
/// shipped in Project Gutenberg's plain-text edition (via the Debian package
/// `r-cran-janeaustenr`): about 200 KB of ASCII text.
static PRIDE_AND_PREJUDICE: &str = include_str!("../../../data/pride_and_prejudice_1-20.txt");

/// The embedded text: chapters 1 to 20 of *Pride and Prejudice* (public domain), about
/// 200 KB of English prose, for tests and demos that need no set-up.
///
/// ```
/// let text = tapegrad_data::embedded_text();
/// assert!(text.starts_with("PRIDE AND PREJUDICE"));
/// assert!(text.len() > 100_000);
/// ```
pub fn embedded_text() -> &'static str {
    PRIDE_AND_PREJUDICE
}

/// A byte-level tokenizer: each byte of the UTF-8 text is one token, so the vocabulary is
/// the 256 byte values and every text encodes without unknown tokens.
///
/// ```
/// use tapegrad_data::ByteTokenizer;
/// let tokens = ByteTokenizer.encode("hé");
/// assert_eq!(tokens, vec![104, 195, 169]);
/// assert_eq!(ByteTokenizer.decode(&tokens), "hé");
/// assert_eq!(ByteTokenizer.decode(&[104, 195]), "h\u{FFFD}"); // a cut character
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// Number of distinct tokens: 256.
    pub const VOCAB_SIZE: usize = 256;

    /// The tokens of `text`: its UTF-8 bytes.
    pub fn encode(&self, text: &str) -> Vec<usize> {
        text.bytes().map(usize::from).collect()
    }

    /// The text of `tokens`; byte sequences that are not valid UTF-8 (a character cut by
    /// a window, or generated) become U+FFFD.
    ///
    /// # Panics
    /// If a token is not below 256.
    #[track_caller]
    pub fn decode(&self, tokens: &[usize]) -> String {
        let bytes: Vec<u8> = tokens
            .iter()
            .map(|&t| {
                u8::try_from(t).unwrap_or_else(|_| {
                    panic!("ByteTokenizer::decode: token {t} is not a byte (vocabulary 256)")
                })
            })
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The text of every regular file in `dir` (not its subfolders), in file-name order,
/// one after the other (a newline is put between two files when the first does not end
/// with one): `--data-dir` corpora.
///
/// # Errors
/// If the folder cannot be read, has no files, or a file cannot be read or is not UTF-8
/// (the error names the file and the byte offset).
pub fn read_text_dir(dir: impl AsRef<Path>) -> Result<String, DataError> {
    let dir = dir.as_ref();
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io_err(&path))?.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::Invalid {
            path: dir.to_path_buf(),
            message: "no files to read text from".into(),
        });
    }
    let mut text = String::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let part = String::from_utf8(bytes).map_err(|e| DataError::Invalid {
            message: format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            path: path.clone(),
        })?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&part);
    }
    Ok(text)
}

/// Splits a token stream in two: the last `round(len * held_out)` tokens are held out
/// (one contiguous block, so no window of the held-out part overlaps the training part).
///
/// # Panics
/// If `held_out` is not in `[0, 1]`.
///
/// ```
/// let (train, held) = tapegrad_data::split_held_out(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.2);
/// assert_eq!((train, held), (&[1, 2, 3, 4, 5, 6, 7, 8][..], &[9, 10][..]));
/// ```
#[track_caller]
pub fn split_held_out(tokens: &[usize], held_out: f64) -> (&[usize], &[usize]) {
    assert!(
        (0.0..=1.0).contains(&held_out),
        "split_held_out: fraction {held_out} is not in [0, 1]"
    );
    let n_held = (tokens.len() as f64 * held_out).round() as usize;
    tokens.split_at(tokens.len() - n_held)
}

/// Fixed-length windows of a token stream with next-token targets, for language models.
///
/// Window `i` is `tokens[i * stride .. i * stride + seq_len]`, its targets the same
/// positions shifted by one (`tokens[i * stride + 1 ..= i * stride + seq_len]`): the
/// token that follows each input token. Windows that would run past the end are not
/// made.
///
/// [`batch`](Self::batch) gives windows as `I64` token tensors (what an embedding
/// takes) with every position's target. As a [`Dataset`] (for
/// [`DataLoader`](crate::DataLoader)'s shuffling and batching), each sample's features
/// are its `seq_len` input tokens as `f32` (a `Dataset` holds `f32` features: convert
/// with `to_dtype(DType::I64)` before an embedding) and its label the token after the
/// window (the last target).
///
/// ```
/// use tapegrad_data::{ByteTokenizer, Dataset, TextDataset};
/// let data = TextDataset::new(ByteTokenizer.encode("abcdefg"), 256, 3);
/// assert_eq!(data.len(), 2); // "abc" -> "bcd", "def" -> "efg"
/// assert_eq!(data.inputs(1), &[100, 101, 102]);
/// assert_eq!(data.targets(1), &[101, 102, 103]);
/// let (x, y) = data.batch(&[1, 0]);
/// assert_eq!(x.to_vec::<i64>(), vec![100, 101, 102, 97, 98, 99]);
/// assert_eq!(y.shape(), &[2, 3]);
/// assert_eq!(y.to_vec::<i64>(), vec![101, 102, 103, 98, 99, 100]);
/// assert_eq!(data.label(0), 100);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TextDataset {
    tokens: Vec<usize>,
    vocab_size: usize,
    seq_len: usize,
    stride: usize,
    sample_shape: [usize; 1],
}

impl TextDataset {
    /// Non-overlapping windows (`stride = seq_len`) of `seq_len` tokens.
    ///
    /// # Panics
    /// If `seq_len` is 0 or a token is not below `vocab_size`.
    #[track_caller]
    pub fn new(tokens: Vec<usize>, vocab_size: usize, seq_len: usize) -> TextDataset {
        TextDataset::with_stride(tokens, vocab_size, seq_len, seq_len)
    }

    /// Windows of `seq_len` tokens starting every `stride` tokens.
    ///
    /// # Panics
    /// If `seq_len` or `stride` is 0 or a token is not below `vocab_size`.
    #[track_caller]
    pub fn with_stride(
        tokens: Vec<usize>,
        vocab_size: usize,
        seq_len: usize,
        stride: usize,
    ) -> TextDataset {
        assert!(
            seq_len > 0 && stride > 0,
            "TextDataset: seq_len ({seq_len}) and stride ({stride}) must be positive"
        );
        if let Some((i, t)) = tokens.iter().enumerate().find(|(_, &t)| t >= vocab_size) {
            panic!("TextDataset: token {t} at position {i} is not below vocab_size {vocab_size}");
        }
        TextDataset {
            tokens,
            vocab_size,
            seq_len,
            stride,
            sample_shape: [seq_len],
        }
    }

    /// Tokens per window.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The whole token stream.
    pub fn tokens(&self) -> &[usize] {
        &self.tokens
    }

    /// The input tokens of window `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    #[track_caller]
    pub fn inputs(&self, i: usize) -> &[usize] {
        let start = self.start(i);
        &self.tokens[start..start + self.seq_len]
    }

    /// The targets of window `i`: each input token's successor.
    ///
    /// # Panics
    /// If `i` is out of range.
    #[track_caller]
    pub fn targets(&self, i: usize) -> &[usize] {
        let start = self.start(i);
        &self.tokens[start + 1..start + 1 + self.seq_len]
    }

    /// The windows `indices` as `I64` token tensors: inputs `[B, seq_len]` and their
    /// next-token targets `[B, seq_len]` (for a cross-entropy over logits
    /// `[B, vocab, seq_len]`, or over `[B * seq_len, vocab]` with the targets reshaped to
    /// `[B * seq_len]`).
    ///
    /// # Panics
    /// If an index is out of range.
    #[track_caller]
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Tensor) {
        let mut x = Vec::with_capacity(indices.len() * self.seq_len);
        let mut y = Vec::with_capacity(indices.len() * self.seq_len);
        for &i in indices {
            x.extend(self.inputs(i).iter().map(|&t| t as i64));
            y.extend(self.targets(i).iter().map(|&t| t as i64));
        }
        let shape = [indices.len(), self.seq_len];
        (Tensor::from_vec(x, &shape), Tensor::from_vec(y, &shape))
    }

    #[track_caller]
    fn start(&self, i: usize) -> usize {
        assert!(
            i < self.len(),
            "TextDataset: window {i} is out of range ({} windows)",
            self.len()
        );
        i * self.stride
    }
}

impl Dataset for TextDataset {
    fn len(&self) -> usize {
        // A window needs seq_len + 1 tokens (inputs and the last target).
        match self.tokens.len().checked_sub(self.seq_len + 1) {
            Some(room) => room / self.stride + 1,
            None => 0,
        }
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    fn num_classes(&self) -> usize {
        self.vocab_size
    }

    fn label(&self, i: usize) -> usize {
        self.targets(i)[self.seq_len - 1]
    }

    fn copy_features(&self, i: usize, out: &mut [f32]) {
        for (o, &t) in out.iter_mut().zip(self.inputs(i)) {
            *o = t as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NgramModel;

    #[test]
    fn windows_cover_the_stream_with_shifted_targets() {
        let tokens: Vec<usize> = (0..10).collect();
        let data = TextDataset::with_stride(tokens.clone(), 10, 4, 3);
        // Starts 0, 3: each needs 5 tokens (4 inputs and the last target); 6 would need 11.
        assert_eq!(data.len(), 2);
        for i in 0..data.len() {
            assert_eq!(data.inputs(i), &tokens[3 * i..3 * i + 4]);
            assert_eq!(data.targets(i), &tokens[3 * i + 1..3 * i + 5]);
            assert_eq!(data.label(i), 3 * i + 4);
            let mut features = vec![0.0; 4];
            data.copy_features(i, &mut features);
            assert_eq!(
                features,
                data.inputs(i).iter().map(|&t| t as f32).collect::<Vec<_>>()
            );
        }
        assert_eq!(TextDataset::new(vec![1, 2, 3], 4, 3).len(), 0);
        assert_eq!(TextDataset::new(vec![1, 2, 3, 0], 4, 3).len(), 1);
    }

    #[test]
    #[should_panic(expected = "window 2 is out of range (2 windows)")]
    fn windows_past_the_end_are_refused() {
        TextDataset::new((0..9).collect(), 10, 4).inputs(2);
    }

    #[test]
    #[should_panic(expected = "token 300 at position 1 is not below vocab_size 256")]
    fn tokens_outside_the_vocabulary_are_refused() {
        TextDataset::new(vec![1, 300], 256, 1);
    }

    #[test]
    fn byte_tokens_round_trip_any_text() {
        let text = "Elizabeth — «Mr. Darcy» ✓\n";
        let tokens = ByteTokenizer.encode(text);
        assert_eq!(tokens.len(), text.len());
        assert_eq!(ByteTokenizer.decode(&tokens), text);
        assert_eq!(embedded_text().len(), 200_735);
        assert!(embedded_text().is_ascii());
    }

    #[test]
    fn a_folder_of_files_is_read_in_name_order_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.txt"), "second\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "first").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(read_text_dir(dir.path()).unwrap(), "first\nsecond\n");

        std::fs::write(dir.path().join("c.bin"), [b'o', b'k', 0xff, 0xfe]).unwrap();
        let err = read_text_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("c.bin") && err.contains("not UTF-8") && err.contains("offset 2"),
            "{err}"
        );

        let empty = tempfile::tempdir().unwrap();
        let err = read_text_dir(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no files"), "{err}");
        let missing = dir.path().join("nope");
        let err = read_text_dir(&missing).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn order_3_baseline_on_the_embedded_text() {
        // The figure a language model is compared with: order-3 byte n-gram, add-one
        // smoothing, trained on the first 90% of the embedded text, scored on the last 10%.
        let tokens = ByteTokenizer.encode(embedded_text());
        let (train, held_out) = split_held_out(&tokens, 0.1);
        let model = NgramModel::fit(train, 3, ByteTokenizer::VOCAB_SIZE);
        let bits = model.bits_per_token(held_out);
        eprintln!("order-3 add-one n-gram, held-out bits per character: {bits:.4}");
        assert!(bits > 2.0 && bits < 4.0, "{bits}");
        // Far below the uniform 8 bits, and above the model's bits on its own training
        // text (which it has counted).
        assert!(model.bits_per_token(train) < bits);
    }
}
