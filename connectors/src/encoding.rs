//! Character-encoding detection for files and legacy text, with a confidence
//! that says how much the data supports the guess.
//!
//! The bytes are streamed through [`Detector::feed`]: UTF-8 validity is
//! tracked as they pass, `chardetng` (Firefox's detector) ranks the legacy
//! encodings, and every *evidence word* (a run of letters holding at least one
//! byte ≥ 0x80) is kept, up to [`MAX_EVIDENCE`]. Then:
//!
//! - valid UTF-8 (or pure ASCII, or a UTF-8 byte-order mark) is UTF-8 with
//!   confidence 1: multi-byte sequences are very unlikely to be valid by chance;
//! - otherwise the ranked guess decodes each evidence word, and a word is
//!   *plausible* when it decodes to letters of one script with a natural case
//!   pattern (`Müller`, `ÉCOLE`, `Привет`; not `MÃ¼ller`, not `Ïðèâåò` mixed
//!   with Latin). The confidence is Laplace's rule of succession over the
//!   words, `(plausible + 1) / (words + 2)`, halved when the detector itself
//!   could not rank its guess above another candidate.
//!
//! So a file with a single accented word (`(1+1)/(1+2) = 0.67`) is rejected as
//! ambiguous rather than guessed, a file mixing UTF-8 and latin1 is rejected
//! because the UTF-8 parts decode to implausible words, and a real latin1
//! export with a few dozen accented names passes the default 0.9.

use encoding_rs::Encoding;

/// Evidence words kept for scoring (the rest only feed the detector).
pub const MAX_EVIDENCE: usize = 20_000;
const MAX_WORD: usize = 64;

/// The outcome of a detection.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The chosen encoding.
    pub encoding: &'static Encoding,
    /// How well the data supports it, in [0, 1].
    pub confidence: f64,
    /// Words with non-ASCII bytes that were scored.
    pub evidence_words: u64,
    /// Up to five words that did not decode plausibly (or, when there is too
    /// little evidence, the words there are): line number and raw bytes.
    pub samples: Vec<(u64, Vec<u8>)>,
}

impl Detection {
    /// Sample offending bytes as `line N: 63 61 66 e9 ("café" as windows-1252)`.
    pub fn describe_samples(&self) -> String {
        self.samples
            .iter()
            .map(|(line, bytes)| {
                let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let (text, _, _) = self.encoding.decode(bytes);
                format!(
                    "line {line}: {} ({:?} as {})",
                    hex.join(" "),
                    text,
                    self.encoding.name()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A streaming detector.
pub struct Detector {
    chardet: chardetng::EncodingDetector,
    utf8_valid: bool,
    /// Bytes of an incomplete UTF-8 sequence carried to the next chunk.
    carry: Vec<u8>,
    first: bool,
    bom: Option<&'static Encoding>,
    line: u64,
    word: Vec<u8>,
    word_high: bool,
    word_line: u64,
    evidence: Vec<(u64, Vec<u8>)>,
    evidence_total: u64,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        Detector {
            chardet: chardetng::EncodingDetector::new(),
            utf8_valid: true,
            carry: Vec::new(),
            first: true,
            bom: None,
            line: 1,
            word: Vec::new(),
            word_high: false,
            word_line: 1,
            evidence: Vec::new(),
            evidence_total: 0,
        }
    }

    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.first && !chunk.is_empty() {
            self.first = false;
            self.bom = Encoding::for_bom(chunk).map(|(e, _)| e);
        }
        self.chardet.feed(chunk, false);
        if self.utf8_valid {
            self.check_utf8(chunk);
        }
        for &b in chunk {
            if b.is_ascii_alphabetic() || b >= 0x80 {
                if self.word.is_empty() {
                    self.word_line = self.line;
                }
                if self.word.len() < MAX_WORD {
                    self.word.push(b);
                }
                self.word_high |= b >= 0x80;
            } else {
                self.end_word();
                if b == b'\n' {
                    self.line += 1;
                }
            }
        }
    }

    fn check_utf8(&mut self, chunk: &[u8]) {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        match std::str::from_utf8(&buf) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                // An incomplete sequence at the end: finish it with the next chunk.
                self.carry = buf[e.valid_up_to()..].to_vec();
            }
            Err(_) => self.utf8_valid = false,
        }
    }

    fn end_word(&mut self) {
        if self.word_high {
            self.evidence_total += 1;
            if self.evidence.len() < MAX_EVIDENCE {
                self.evidence.push((self.word_line, self.word.clone()));
            }
        }
        self.word.clear();
        self.word_high = false;
    }

    /// Ends the stream and decides.
    pub fn finish(mut self) -> Detection {
        self.end_word();
        self.chardet.feed(&[], true);
        if !self.carry.is_empty() {
            self.utf8_valid = false;
        }
        if let Some(bom) = self.bom {
            return self.certain(bom);
        }
        if self.utf8_valid {
            return self.certain(encoding_rs::UTF_8);
        }
        let (encoding, ranked) = self.chardet.guess_assess(None, false);
        let (plausible, mut bad) = self.judge(encoding);
        let n = self.evidence.len() as f64;
        let mut confidence = (plausible as f64 + 1.0) / (n + 2.0);
        if !ranked {
            confidence /= 2.0;
        }
        if bad.is_empty() {
            bad = self.evidence.iter().take(5).cloned().collect();
        }
        Detection {
            encoding,
            confidence,
            evidence_words: self.evidence_total,
            samples: bad,
        }
    }
}

impl Detector {
    /// `encoding` beyond doubt (a byte-order mark, valid UTF-8).
    fn certain(&self, encoding: &'static Encoding) -> Detection {
        Detection {
            encoding,
            confidence: 1.0,
            evidence_words: self.evidence_total,
            samples: Vec::new(),
        }
    }

    /// The evidence words that decode plausibly under `encoding`, and up to
    /// five that do not (line, bytes).
    fn judge(&self, encoding: &'static Encoding) -> (u64, Vec<(u64, Vec<u8>)>) {
        let mut plausible = 0u64;
        let mut bad = Vec::new();
        for (line, word) in &self.evidence {
            let (text, _, had_errors) = encoding.decode(word);
            if !had_errors && plausible_word(&text) {
                plausible += 1;
            } else if bad.len() < 5 {
                bad.push((*line, word.clone()));
            }
        }
        (plausible, bad)
    }

    /// Ends the stream of a database column that declares `declared`: valid
    /// UTF-8 with non-ASCII text means the column holds UTF-8 whatever it
    /// declares (confidence 1); otherwise the declaration stands when every
    /// evidence word decodes plausibly under it (confidence 1), and when some
    /// do not, the confidence is the rule of succession over the words.
    pub fn finish_declared(mut self, declared: &'static Encoding) -> Detection {
        self.end_word();
        if !self.carry.is_empty() {
            self.utf8_valid = false;
        }
        if self.utf8_valid {
            return self.certain(encoding_rs::UTF_8);
        }
        let (plausible, bad) = self.judge(declared);
        let n = self.evidence.len() as u64;
        Detection {
            encoding: declared,
            confidence: if plausible == n {
                1.0
            } else {
                (plausible as f64 + 1.0) / (n as f64 + 2.0)
            },
            evidence_words: self.evidence_total,
            samples: bad,
        }
    }
}

/// Detects the encoding of a whole byte slice.
pub fn detect(bytes: &[u8]) -> Detection {
    let mut d = Detector::new();
    d.feed(bytes);
    d.finish()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Hebrew,
    Arabic,
    Thai,
    Cjk,
    Other,
}

fn script(c: char) -> Script {
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xAA | 0xBA | 0xC0..=0x24F | 0x1E00..=0x1EFF => Script::Latin,
        0x370..=0x3FF | 0x1F00..=0x1FFF => Script::Greek,
        0x400..=0x52F => Script::Cyrillic,
        0x590..=0x5FF => Script::Hebrew,
        0x600..=0x6FF => Script::Arabic,
        0xE00..=0xE7F => Script::Thai,
        0x3040..=0x30FF | 0x3400..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF => Script::Cjk,
        _ => Script::Other,
    }
}

/// Whether a decoded word looks like text: letters of one script, no C1
/// controls, and no lower-case letter followed by an upper-case one. A lone
/// symbol (`€`, `°`, `£`) is plausible too.
pub fn plausible_word(word: &str) -> bool {
    let mut chars = word.chars().peekable();
    let Some(&first) = chars.peek() else {
        return true;
    };
    if word.chars().count() == 1 && !first.is_control() {
        return true;
    }
    let first_script = script(first);
    if first_script == Script::Other {
        return false;
    }
    let mut prev_lower = false;
    for c in chars {
        if !c.is_alphabetic() || script(c) != first_script {
            return false;
        }
        if c.is_uppercase() && prev_lower {
            return false;
        }
        prev_lower = c.is_lowercase();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latin1(s: &str) -> Vec<u8> {
        encoding_rs::WINDOWS_1252.encode(s).0.into_owned()
    }

    #[test]
    fn utf8_and_ascii_are_certain() {
        let d = detect("id,name\n1,Zoë Müller\n".as_bytes());
        assert_eq!(d.encoding, encoding_rs::UTF_8);
        assert_eq!(d.confidence, 1.0);
        let d = detect(b"id,name\n1,plain\n");
        assert_eq!(d.encoding, encoding_rs::UTF_8);
    }

    #[test]
    fn a_latin1_export_passes_with_high_confidence() {
        let mut text = String::from("id,name,city\n");
        for (i, (n, c)) in [
            ("José Muñoz", "Málaga"),
            ("Zoë Müller", "Köln"),
            ("François Lefèvre", "Orléans"),
            ("Björn Åkesson", "Göteborg"),
            ("Inês Conceição", "Évora"),
            ("Jürgen Weiß", "Düsseldorf"),
        ]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
        {
            text.push_str(&format!("{i},{n},{c}\n"));
        }
        let d = detect(&latin1(&text));
        assert_eq!(d.encoding, encoding_rs::WINDOWS_1252, "{d:?}");
        assert!(d.confidence >= 0.9, "{}", d.confidence);
    }

    #[test]
    fn one_accented_word_is_too_little_evidence() {
        let d = detect(&latin1("id,name\n1,Renée\n"));
        assert!(d.confidence < 0.9, "{}", d.confidence);
        assert!(
            d.describe_samples().contains("52 65 6e e9 65"),
            "{}",
            d.describe_samples()
        );
    }

    #[test]
    fn utf8_mixed_with_latin1_is_rejected() {
        let mut bytes = Vec::new();
        for i in 0..20 {
            bytes.extend_from_slice(format!("{i},Müller,café\n").as_bytes());
        }
        bytes.extend_from_slice(&latin1("99,Müller,café\n"));
        let d = detect(&bytes);
        assert!(d.confidence < 0.5, "{d:?}");
        assert!(!d.samples.is_empty());
    }

    #[test]
    fn plausibility_rules() {
        assert!(plausible_word("Müller"));
        assert!(plausible_word("ÉCOLE"));
        assert!(plausible_word("Привет"));
        assert!(plausible_word("€"));
        assert!(!plausible_word("MÃ¼ller"));
        assert!(!plausible_word("cafÃ©"));
        assert!(!plausible_word("abcПривет"));
        assert!(!plausible_word("a\u{0085}b"));
    }
}
