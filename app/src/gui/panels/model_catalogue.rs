//! The Model tab's list of published C2S checkpoints: id, family, size and licence, with a
//! Download button that fetches one into the Hugging Face cache (resumable, checksummed; see
//! `c2s_core::hub`) in a background job and then loads it. Offline, the job's error says so
//! and how to copy a model in instead.

use std::sync::atomic::AtomicBool;

use c2s_core::engine::LoadOptions;
use c2s_core::hub::catalogue::CATALOGUE;
use c2s_core::hub::{Downloaded, HubConfig, HubError, download_model};
use egui::Ui;

use super::PanelContext;
use crate::format::{human_bytes, human_count};
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};

/// The catalogue section and its download.
#[derive(Debug, Default)]
pub struct CatalogueSection {
    running: Option<(String, JobHandle<Downloaded>)>,
    /// What the last download did (or why it failed).
    pub last: Option<Result<String, String>>,
}

impl CatalogueSection {
    /// Takes a finished download and loads the model with `options`.
    pub fn update(&mut self, cx: &mut PanelContext<'_>, options: LoadOptions) {
        let Some((id, job)) = &mut self.running else {
            return;
        };
        let Some(result) = job.poll().result else {
            return;
        };
        let id = id.clone();
        self.running = None;
        self.last = Some(match result {
            Ok(done) => {
                cx.models
                    .start_load(cx.jobs, &done.snapshot_dir.display().to_string(), options);
                Ok(format!(
                    "{id}: {} downloaded into {} ({} files); loading it",
                    human_bytes(done.bytes_fetched),
                    done.snapshot_dir.display(),
                    done.files.len()
                ))
            }
            Err(e) => Err(format!("{id}: {e}")),
        });
    }

    /// Draws the list.
    pub fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        egui::CollapsingHeader::new("Published C2S models (download)")
            .default_open(cx.models.models().is_empty())
            .show(ui, |ui| {
                egui::Grid::new("catalogue").striped(true).show(ui, |ui| {
                    for entry in &CATALOGUE {
                        ui.label(entry.id).on_hover_text(entry.description);
                        ui.weak(entry.architecture);
                        ui.weak(format!("{} parameters", human_count(entry.parameters)));
                        ui.weak(entry.licence);
                        let busy = self.running.is_some();
                        if ui
                            .add_enabled(!busy, egui::Button::new("Download"))
                            .on_hover_text(
                                "Into the Hugging Face cache; an interrupted download resumes",
                            )
                            .clicked()
                        {
                            self.running = Some((entry.id.to_string(), spawn(cx.jobs, entry.id)));
                        }
                        ui.end_row();
                    }
                });
                if let Some((id, _)) = &self.running {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(format!("downloading {id} (progress in the status bar)"));
                    });
                }
                match &self.last {
                    Some(Ok(text)) => {
                        ui.label(text);
                    }
                    Some(Err(text)) => {
                        ui.colored_label(ui.visuals().error_fg_color, text);
                    }
                    None => {}
                }
            });
    }
}

/// Downloads `id` at `main` in the CPU lane (network work; the accelerator stays free).
fn spawn(jobs: &mut Jobs, id: &str) -> JobHandle<Downloaded> {
    let repo = id.to_string();
    jobs.spawn(
        format!("Downloading {id}"),
        Lane::Cpu,
        move |job: &JobContext<()>| {
            let config = HubConfig::from_env().map_err(|e| JobError::Failed(e.to_string()))?;
            let cancel: &AtomicBool = job.cancel_flag();
            download_model(
                &config,
                &repo,
                "main",
                &mut |file, done, total| {
                    let fraction = if total > 0 {
                        done as f32 / total as f32
                    } else {
                        0.0
                    };
                    job.set(
                        fraction,
                        format!("{file}: {} of {}", human_bytes(done), human_bytes(total)),
                    );
                },
                cancel,
            )
            .map_err(|e| match e {
                HubError::Cancelled => JobError::Cancelled,
                other => JobError::Failed(other.to_string()),
            })
        },
    )
}
