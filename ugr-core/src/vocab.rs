//! The token vocabulary: special tokens, then the codes of every SID level.
//!
//! # Token id layout (fixed; every model, checkpoint and artifact uses it)
//!
//! | ids | meaning |
//! |---|---|
//! | 0 | `PAD` |
//! | 1 | `BOS` (start of the generated SID) |
//! | 2 | `EOS` |
//! | 3 | `CONF_Q` (asks the model for its confidence in the SID before it) |
//! | 4 | `C_LOW` |
//! | 5 | `C_HIGH` |
//! | 6, 7 | reserved, never produced |
//! | 8 .. 8 + C₀ | level 0 codes: token = 8 + code |
//! | 8 + C₀ .. 8 + C₀ + C₁ | level 1 codes: token = 8 + C₀ + code |
//! | ... | one block of Cₗ ids per level, in level order |
//!
//! The confidence tokens always have their ids, so a model trained without them
//! (SFT) and the same model after the RL stage share one layout; whether a model
//! has *learned* them is a property of the model, not of the vocabulary.
//!
//! ```
//! use ugr_core::{Sid, SidVocab, Special, TokenId, TokenKind};
//! let vocab = SidVocab::new(&[256, 256, 256, 256])?;
//! assert_eq!(vocab.size(), 8 + 4 * 256);
//! assert_eq!(Special::ConfQ.token(), TokenId::new(3));
//! let t = vocab.token(1, 3)?; // level 1, code 3
//! assert_eq!(t, TokenId::new(8 + 256 + 3));
//! assert_eq!(vocab.kind(t), Some(TokenKind::Code { level: 1, code: 3 }));
//! let sid = Sid::parse("<a_12><b_3><c_200><d_7>")?;
//! let tokens: Vec<TokenId> = vocab.encode(&sid)?.collect();
//! assert_eq!(vocab.decode(&tokens)?, sid);
//! # Ok::<(), ugr_core::Error>(())
//! ```

use core::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::TokenId;
use crate::sid::Sid;

/// Most SID levels a vocabulary can have.
pub const MAX_LEVELS: usize = 8;
/// Largest codebook size of one level (codes fit in `u16`).
pub const MAX_CODEBOOK: u32 = 65_536;
/// Number of ids reserved for special tokens at the start of the vocabulary.
pub const SPECIAL_TOKENS: u32 = 8;

/// The special tokens and their fixed ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Special {
    /// Padding (id 0).
    Pad = 0,
    /// Start of the generated SID (id 1).
    Bos = 1,
    /// End of sequence (id 2).
    Eos = 2,
    /// Confidence query: the model's next-token logits of `C_LOW` / `C_HIGH` after it give the confidence (id 3).
    ConfQ = 3,
    /// Low-confidence answer token (id 4).
    CLow = 4,
    /// High-confidence answer token (id 5).
    CHigh = 5,
}

impl Special {
    /// Every special token, in id order.
    pub const ALL: [Special; 6] = [
        Special::Pad,
        Special::Bos,
        Special::Eos,
        Special::ConfQ,
        Special::CLow,
        Special::CHigh,
    ];

    /// The token id.
    #[inline]
    pub const fn token(self) -> TokenId {
        TokenId::new(self as u32)
    }

    /// The printed name (`PAD`, `BOS`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Special::Pad => "PAD",
            Special::Bos => "BOS",
            Special::Eos => "EOS",
            Special::ConfQ => "CONF_Q",
            Special::CLow => "C_LOW",
            Special::CHigh => "C_HIGH",
        }
    }
}

/// What a token id stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A special token.
    Special(Special),
    /// One of the reserved ids 6 and 7.
    Reserved,
    /// A SID code.
    Code {
        /// Zero-based level.
        level: usize,
        /// Code within the level's codebook.
        code: u16,
    },
}

/// The SID vocabulary: number of levels and each level's codebook size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidVocab {
    levels: u8,
    sizes: [u32; MAX_LEVELS],
    /// `offsets[l]` is the first token id of level `l`; `offsets[levels]` is the vocabulary size.
    offsets: [u32; MAX_LEVELS + 1],
}

impl SidVocab {
    /// A vocabulary with the given codebook size per level (1 to 8 levels, sizes 1..=65,536).
    pub fn new(sizes: &[u32]) -> Result<Self> {
        if sizes.is_empty() || sizes.len() > MAX_LEVELS {
            return Err(Error::LevelCount { got: sizes.len() });
        }
        let mut vocab = SidVocab {
            levels: sizes.len() as u8,
            sizes: [0; MAX_LEVELS],
            offsets: [0; MAX_LEVELS + 1],
        };
        let mut next = SPECIAL_TOKENS;
        for (level, &size) in sizes.iter().enumerate() {
            if size == 0 || size > MAX_CODEBOOK {
                return Err(Error::CodebookSize { level, size });
            }
            vocab.sizes[level] = size;
            vocab.offsets[level] = next;
            next += size;
        }
        for offset in &mut vocab.offsets[sizes.len()..] {
            *offset = next;
        }
        Ok(vocab)
    }

    /// Checks the invariants of a deserialized vocabulary.
    pub fn validate(&self) -> Result<()> {
        let rebuilt = SidVocab::new(
            self.sizes
                .get(..usize::from(self.levels))
                .ok_or(Error::Corrupt("vocabulary level count"))?,
        )
        .map_err(|_| Error::Corrupt("vocabulary codebook sizes"))?;
        if rebuilt != *self {
            return Err(Error::Corrupt("vocabulary offsets"));
        }
        Ok(())
    }

    /// Number of SID levels.
    #[inline]
    pub fn levels(&self) -> usize {
        usize::from(self.levels)
    }

    /// Codebook size per level.
    #[inline]
    pub fn codebook_sizes(&self) -> &[u32] {
        &self.sizes[..self.levels()]
    }

    /// Codebook size of one level (0 for a level the vocabulary does not have).
    #[inline]
    pub fn codebook_size(&self, level: usize) -> u32 {
        if level < self.levels() {
            self.sizes[level]
        } else {
            0
        }
    }

    /// Total number of token ids (special and reserved included).
    #[inline]
    pub fn size(&self) -> u32 {
        self.offsets[self.levels()]
    }

    /// The token ids of one level's codes, `first..first + codebook size`.
    ///
    /// # Panics
    /// If `level >= self.levels()`.
    #[inline]
    pub fn level_tokens(&self, level: usize) -> Range<u32> {
        assert!(level < self.levels(), "level {level} out of range");
        self.offsets[level]..self.offsets[level + 1]
    }

    /// The token of `code` at `level`.
    pub fn token(&self, level: usize, code: u16) -> Result<TokenId> {
        if level >= self.levels() {
            return Err(Error::SidLength {
                expected: self.levels(),
                got: level + 1,
            });
        }
        if u32::from(code) >= self.sizes[level] {
            return Err(Error::CodeOutOfRange {
                level,
                code: u32::from(code),
                size: self.sizes[level],
            });
        }
        Ok(TokenId::new(self.offsets[level] + u32::from(code)))
    }

    /// What a token id stands for, or `None` past the vocabulary.
    pub fn kind(&self, token: TokenId) -> Option<TokenKind> {
        let t = token.as_u32();
        if t < SPECIAL_TOKENS {
            return Some(
                Special::ALL
                    .get(t as usize)
                    .map_or(TokenKind::Reserved, |&s| TokenKind::Special(s)),
            );
        }
        let level = (0..self.levels()).find(|&l| t < self.offsets[l + 1])?;
        Some(TokenKind::Code {
            level,
            code: (t - self.offsets[level]) as u16,
        })
    }

    /// Checks that `sid` has this vocabulary's levels and every code fits its codebook.
    pub fn check(&self, sid: &Sid) -> Result<()> {
        if sid.len() != self.levels() {
            return Err(Error::SidLength {
                expected: self.levels(),
                got: sid.len(),
            });
        }
        self.check_prefix(sid)
    }

    /// Checks that `prefix` is a SID prefix of this vocabulary: 1 to `levels()` codes, each
    /// within its level's codebook (a full SID is a prefix too).
    pub fn check_prefix(&self, prefix: &Sid) -> Result<()> {
        if prefix.len() > self.levels() {
            return Err(Error::SidLength {
                expected: self.levels(),
                got: prefix.len(),
            });
        }
        for (level, &code) in prefix.codes().iter().enumerate() {
            if u32::from(code) >= self.sizes[level] {
                return Err(Error::CodeOutOfRange {
                    level,
                    code: u32::from(code),
                    size: self.sizes[level],
                });
            }
        }
        Ok(())
    }

    /// The tokens of a SID, level 0 first.
    pub fn encode(&self, sid: &Sid) -> Result<impl Iterator<Item = TokenId> + use<>> {
        self.check(sid)?;
        let (offsets, sid) = (self.offsets, *sid);
        Ok((0..sid.len()).map(move |level| TokenId::new(offsets[level] + u32::from(sid.codes()[level]))))
    }

    /// The token of `code` at `level` without the codebook check, for codes already checked
    /// against this vocabulary (catalog SIDs are).
    ///
    /// # Panics
    /// If `level >= MAX_LEVELS`.
    #[inline]
    pub fn code_token(&self, level: usize, code: u16) -> TokenId {
        TokenId::new(self.offsets[level] + u32::from(code))
    }

    /// The SID spelled by `tokens` (one code token per level, in level order).
    pub fn decode(&self, tokens: &[TokenId]) -> Result<Sid> {
        if tokens.len() != self.levels() {
            return Err(Error::SidLength {
                expected: self.levels(),
                got: tokens.len(),
            });
        }
        let mut codes = [0u16; MAX_LEVELS];
        for (level, &token) in tokens.iter().enumerate() {
            match self.kind(token) {
                Some(TokenKind::Code { level: l, code }) if l == level => codes[level] = code,
                _ => return Err(Error::UnknownToken(token)),
            }
        }
        Sid::new(&codes[..tokens.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_fixed() {
        let v = SidVocab::new(&[3, 5]).unwrap();
        assert_eq!(v.size(), 16);
        assert_eq!(v.level_tokens(0), 8..11);
        assert_eq!(v.level_tokens(1), 11..16);
        assert_eq!(v.kind(TokenId::new(6)), Some(TokenKind::Reserved));
        assert_eq!(v.kind(TokenId::new(5)), Some(TokenKind::Special(Special::CHigh)));
        assert_eq!(v.kind(TokenId::new(16)), None);
        assert!(v.token(0, 3).is_err());
        assert!(v.token(2, 0).is_err());
        assert!(v.decode(&[TokenId::new(11), TokenId::new(8)]).is_err());
        assert!(SidVocab::new(&[]).is_err());
        assert!(SidVocab::new(&[0]).is_err());
        assert!(SidVocab::new(&[65_537]).is_err());
        assert!(SidVocab::new(&[1; 9]).is_err());
        assert!(SidVocab::new(&[65_536; 8]).is_ok());
    }
}
