//! Unit tests, one file per stage so each stays readable on its own.

mod evaluating;
mod lexing;
mod lookup;
mod parsing;
