//! Examples of outcometer: the [`demo`] service (the README's main command) and
//! its building blocks. The README's SDK snippet is compiled here as a doctest.
#![doc = include_str!("../../README.md")]

pub mod common;
pub mod demo;
pub mod gateway;
pub mod pipeline;
