//! Examples of outcometer. The README's SDK snippet is compiled here.
#![doc = include_str!("../../README.md")]
