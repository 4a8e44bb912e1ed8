//! End-to-end tests of the `c2s-studio` binary, in one test binary: conversion on generated and
//! real files, bad input, the model commands, and parity with the `cell2sentence` package.

mod common;

mod cli_bad_input;
mod cli_convert;
mod cli_download;
mod cli_engine;
mod cli_finetune;
mod cli_score_sets;
mod cli_screen;
mod cli_tasks;
mod reference_parity;
