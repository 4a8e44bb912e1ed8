//! The Model tab: load a C2S checkpoint (a directory or a Hugging Face id in the local cache) on
//! the chosen device, see what is loaded (device, dtype, parameters, memory), unload it, and try
//! it: a prompt whose generation streams in token by token. An optional LoRA adapter folder
//! (a Fine-tune run's output, or peft's) is merged in at load; the list says which is on.
//!
//! Loading and generating are accelerator-lane jobs; this panel owns their handles.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};
use std::time::Instant;

use c2s_core::engine::locate::{LocalModel, list_models};
use c2s_core::engine::{DTypeRequest, DeviceRequest, GenerateOptions, LoadOptions, SamplingParams};
use egui::Ui;

use super::model_catalogue::CatalogueSection;
use super::model_choice::keep_loaded;
use super::{Panel, PanelContext};
use crate::format::{human_bytes, human_count};
use crate::gui::jobs::{JobContext, JobError, JobHandle, Jobs, Lane};
use crate::gui::models::LoadedModel;

/// How a "try it" generation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TryOutcome {
    /// The final text (cut before a stop string, special tokens skipped).
    pub text: String,
    /// New tokens.
    pub tokens: usize,
    /// Wall time in seconds, prefill included.
    pub seconds: f64,
    /// Why it stopped.
    pub stop: &'static str,
}

/// The Model tab.
#[derive(Debug)]
pub struct ModelPanel {
    /// Directory or Hugging Face id to load.
    pub source: String,
    /// Device to load on.
    pub device: DeviceRequest,
    /// Precision to load in.
    pub dtype: DTypeRequest,
    /// A LoRA adapter folder to merge in at load (empty: none).
    pub adapter: String,
    browse: Option<Receiver<PathBuf>>,
    found: Option<Result<Vec<LocalModel>, String>>,
    scan: Option<JobHandle<Vec<LocalModel>>>,
    /// The loaded model the "try it" box runs.
    pub try_model: Option<u64>,
    /// The prompt.
    pub prompt: String,
    /// Most new tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// The streamed (then final) output.
    pub output: String,
    /// The generation running, streaming text pieces.
    pub run: Option<JobHandle<TryOutcome, String>>,
    /// A line on the last generation (tokens, speed, why it stopped).
    pub last: Option<String>,
    /// The published checkpoints to download.
    pub catalogue: CatalogueSection,
}

impl Default for ModelPanel {
    fn default() -> Self {
        Self {
            source: String::new(),
            device: DeviceRequest::Auto,
            dtype: DTypeRequest::Auto,
            adapter: String::new(),
            browse: None,
            found: None,
            scan: None,
            try_model: None,
            prompt: String::new(),
            max_new_tokens: 64,
            temperature: 0.0,
            output: String::new(),
            run: None,
            last: None,
            catalogue: CatalogueSection::default(),
        }
    }
}

impl Panel for ModelPanel {
    fn id(&self) -> &'static str {
        "model"
    }

    fn title(&self) -> &'static str {
        "Model"
    }

    fn update(&mut self, cx: &mut PanelContext<'_>) {
        let options = LoadOptions {
            device: self.device,
            dtype: self.dtype,
            ..LoadOptions::default()
        };
        self.catalogue.update(cx, options);
        if let Some(job) = &mut self.run {
            let polled = job.poll();
            for piece in polled.partials {
                self.output.push_str(&piece);
            }
            if let Some(result) = polled.result {
                self.run = None;
                self.last = Some(match result {
                    Ok(done) => {
                        self.output = done.text;
                        format!(
                            "{} tokens in {:.2} s ({:.1} tokens/s), stopped: {}",
                            done.tokens,
                            done.seconds,
                            done.tokens as f64 / done.seconds.max(1e-9),
                            done.stop
                        )
                    }
                    Err(e) => format!("stopped: {e} (the text so far is kept)"),
                });
            }
        }
        if let Some(job) = &mut self.scan
            && let Some(result) = job.poll().result
        {
            self.scan = None;
            self.found = Some(result.map_err(|e| e.to_string()));
        }
        if let Some(rx) = &self.browse
            && let Ok(path) = rx.try_recv()
        {
            self.source = path.display().to_string();
            self.browse = None;
        }
        keep_loaded(&mut self.try_model, cx.models);
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        egui::ScrollArea::both()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                self.load_form(ui, cx);
                self.catalogue.ui(ui, cx);
                ui.separator();
                self.loaded_list(ui, cx);
                ui.separator();
                self.try_it(ui, cx);
            });
    }
}

impl ModelPanel {
    fn load_form(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Load a model");
        ui.horizontal(|ui| {
            let label = ui.label("Model folder or id");
            ui.add(
                egui::TextEdit::singleline(&mut self.source)
                    .hint_text("a model folder, or an id such as vandijklab/C2S-Pythia-410m-cell-type-prediction")
                    .desired_width(420.0),
            )
            .labelled_by(label.id);
            if ui
                .add_enabled(self.browse.is_none(), egui::Button::new("Browse…"))
                .clicked()
            {
                let (tx, rx) = channel();
                self.browse = Some(rx);
                let _ = std::thread::Builder::new()
                    .name("folder dialog".into())
                    .spawn(move || {
                        if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                            let _ = tx.send(dir);
                        }
                    });
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("Adapter folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.adapter)
                    .hint_text("optional: a LoRA adapter folder (adapter_config.json)")
                    .desired_width(420.0),
            )
            .labelled_by(label.id);
        });
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Device")
                .selected_text(device_name(self.device))
                .show_ui(ui, |ui| {
                    for d in [
                        DeviceRequest::Auto,
                        DeviceRequest::Cuda,
                        DeviceRequest::Wgpu,
                        DeviceRequest::Cpu,
                    ] {
                        ui.selectable_value(&mut self.device, d, device_name(d));
                    }
                });
            egui::ComboBox::from_label("Precision")
                .selected_text(dtype_name(self.dtype))
                .show_ui(ui, |ui| {
                    for d in [
                        DTypeRequest::Auto,
                        DTypeRequest::F32,
                        DTypeRequest::F16,
                        DTypeRequest::BF16,
                        DTypeRequest::Q8,
                    ] {
                        ui.selectable_value(&mut self.dtype, d, dtype_name(d));
                    }
                });
            let ready = !self.source.trim().is_empty();
            if ui
                .add_enabled(ready, egui::Button::new("Load model"))
                .on_disabled_hover_text("Name a model folder or id first")
                .clicked()
            {
                let options = LoadOptions {
                    device: self.device,
                    dtype: self.dtype,
                    ..LoadOptions::default()
                };
                let adapter = Some(self.adapter.trim())
                    .filter(|a| !a.is_empty())
                    .map(PathBuf::from);
                cx.models
                    .start_load_with_adapter(cx.jobs, &self.source, adapter, options);
            }
        });
        self.found_list(ui, cx);
    }

    fn found_list(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.horizontal(|ui| {
            ui.label("On this computer (Hugging Face cache):");
            let scanning = self.scan.is_some();
            if ui
                .add_enabled(!scanning, egui::Button::new("Look for models"))
                .clicked()
            {
                self.scan = Some(cx.jobs.spawn(
                    "Looking for models",
                    Lane::Cpu,
                    |_: &JobContext<()>| list_models(None).map_err(|e| e.to_string().into()),
                ));
            }
            if scanning {
                ui.spinner();
            }
        });
        match &self.found {
            None => {}
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Some(Ok(found)) if found.is_empty() => {
                ui.weak(
                    "No models in the Hugging Face cache. Copy a model folder (config.json, \
                     tokenizer.json, *.safetensors) anywhere and choose it with Browse…",
                );
            }
            Some(Ok(found)) => {
                egui::Grid::new("found models")
                    .striped(true)
                    .show(ui, |ui| {
                        for m in found {
                            ui.label(&m.name);
                            ui.weak(m.model_type.as_deref().unwrap_or("?"));
                            ui.weak(human_bytes(m.weight_bytes));
                            if ui.small_button("Choose").clicked() {
                                self.source = m.dir.display().to_string();
                            }
                            ui.end_row();
                        }
                    });
            }
        }
    }

    fn loaded_list(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Loaded models");
        for (source, _) in cx.models.loading() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("loading {source}…"));
            });
        }
        if cx.models.models().is_empty() {
            ui.weak("none yet");
            return;
        }
        let mut unload = None;
        egui::Grid::new("loaded models")
            .striped(true)
            .show(ui, |ui| {
                for title in [
                    "model",
                    "",
                    "architecture",
                    "device",
                    "dtype",
                    "parameters",
                    "weights in memory",
                    "context",
                    "adapter",
                ] {
                    ui.strong(title);
                }
                ui.end_row();
                for m in cx.models.models() {
                    let info = m.engine.info();
                    ui.label(m.name())
                        .on_hover_text(info.dir.display().to_string());
                    if ui.small_button("Unload").clicked() {
                        unload = Some(m.id);
                    }
                    ui.label(&info.architecture);
                    let device = ui.label(format!(
                        "{} ({})",
                        info.device.kind, info.device.description
                    ));
                    if !info.device.notes.is_empty() {
                        device.on_hover_text(info.device.notes.join("\n"));
                    }
                    ui.label(precision_label(info));
                    ui.label(human_count(info.parameters));
                    ui.label(human_bytes(info.weight_bytes()));
                    ui.label(format!("{} tokens", info.context));
                    match &m.adapter {
                        Some(a) => {
                            ui.label(crate::gui::loader::display_name(a))
                                .on_hover_text(a.display().to_string());
                        }
                        None => {
                            ui.weak("none");
                        }
                    }
                    ui.end_row();
                }
            });
        if let Some(id) = unload {
            cx.models.unload(id);
        }
    }

    fn try_it(&mut self, ui: &mut Ui, cx: &mut PanelContext<'_>) {
        ui.strong("Try it");
        let models = cx.models.models();
        if models.is_empty() {
            ui.weak("Load a model to try a prompt.");
            return;
        }
        let current = self
            .try_model
            .and_then(|id| cx.models.get(id))
            .map(|m| m.name())
            .unwrap_or_default();
        egui::ComboBox::from_label("Model to run")
            .selected_text(current)
            .show_ui(ui, |ui| {
                for m in models {
                    ui.selectable_value(&mut self.try_model, Some(m.id), m.name());
                }
            });
        let label = ui.label("Prompt");
        ui.add(
            egui::TextEdit::multiline(&mut self.prompt)
                .hint_text("e.g. a cell sentence: MALAT1 B2M TMSB4X CD74 …")
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        ui.horizontal(|ui| {
            ui.label("New tokens");
            ui.add(egui::DragValue::new(&mut self.max_new_tokens).range(1..=2048));
            ui.label("Temperature");
            ui.add(egui::Slider::new(&mut self.temperature, 0.0..=2.0))
                .on_hover_text("0 picks the most likely token every time (greedy)");
            match &self.run {
                Some(job) => {
                    if ui.button("Stop").clicked() {
                        job.cancel();
                    }
                    ui.spinner();
                }
                None => {
                    let ready = !self.prompt.trim().is_empty();
                    if ui
                        .add_enabled(ready, egui::Button::new("Generate"))
                        .on_disabled_hover_text("Write a prompt first")
                        .clicked()
                        && let Some(model) = self.try_model.and_then(|id| cx.models.get(id))
                    {
                        self.output.clear();
                        self.last = None;
                        self.run = Some(start_generation(
                            cx.jobs,
                            model,
                            self.prompt.clone(),
                            self.max_new_tokens,
                            self.temperature,
                        ));
                    }
                }
            }
        });
        if !self.output.is_empty() || self.run.is_some() {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(egui::RichText::new(&self.output).monospace());
            });
        }
        if let Some(line) = &self.last {
            ui.weak(line);
        }
    }
}

/// Starts a streamed generation of `prompt` with `model` in the accelerator lane. The job's
/// cancel flag is the engine's, so Stop ends the decode loop at the next token.
fn start_generation(
    jobs: &mut Jobs,
    model: &LoadedModel,
    prompt: String,
    max_new_tokens: usize,
    temperature: f32,
) -> JobHandle<TryOutcome, String> {
    let engine = model.engine.clone();
    jobs.spawn(
        format!("Generating with {}", model.name()),
        Lane::Accelerator,
        move |job: &JobContext<String>| {
            let options = GenerateOptions {
                max_new_tokens,
                sampling: SamplingParams {
                    temperature,
                    ..SamplingParams::default()
                },
                ..GenerateOptions::default()
            };
            let started = Instant::now();
            let mut n = 0usize;
            let (out, _) = engine
                .generate(
                    &[prompt.as_str()],
                    &options,
                    &mut |event| {
                        n += 1;
                        job.set(
                            n as f32 / max_new_tokens as f32,
                            format!("{n} of at most {max_new_tokens} tokens"),
                        );
                        if !event.text_delta.is_empty() {
                            job.send(event.text_delta.to_string());
                        }
                    },
                    Some(job.cancel_flag()),
                )
                .map_err(|e| e.to_string())?;
            job.check()?;
            let g = out
                .into_iter()
                .next()
                .ok_or_else(|| JobError::Failed("the engine returned no text".into()))?;
            Ok(TryOutcome {
                tokens: g.token_ids.len(),
                text: g.text,
                seconds: started.elapsed().as_secs_f64(),
                stop: g.stop_reason.as_str(),
            })
        },
    )
}

fn device_name(d: DeviceRequest) -> &'static str {
    match d {
        DeviceRequest::Auto => "automatic (CUDA, GPU, else CPU)",
        DeviceRequest::Cuda => "CUDA",
        DeviceRequest::Wgpu => "GPU (wgpu)",
        DeviceRequest::Cpu => "CPU",
    }
}

/// `f32`, `bf16`, or `f32, q8 weights` for a model whose CPU kernels hold 8-bit weights.
fn precision_label(info: &c2s_core::engine::ModelInfo) -> String {
    let dtype = format!("{:?}", info.dtype).to_lowercase();
    match info.cpu_weights {
        Some(w) if w != c2s_core::kernels::WeightFormat::F32 => {
            format!("{dtype}, {} weights", w.name())
        }
        _ => dtype,
    }
}

fn dtype_name(d: DTypeRequest) -> &'static str {
    match d {
        DTypeRequest::Auto => "automatic",
        DTypeRequest::F32 => "f32",
        DTypeRequest::F16 => "f16",
        DTypeRequest::BF16 => "bf16",
        DTypeRequest::Q8 => "q8 (8-bit weights, CPU)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2s_core::engine::Engine;
    use std::sync::Arc;

    #[test]
    fn a_generation_streams_its_text_in_pieces_that_add_up_to_the_answer() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models/gpt_neox_sequential");
        let options = LoadOptions {
            device: DeviceRequest::Cpu,
            dtype: DTypeRequest::F32,
            fusion: false,
        };
        let model = LoadedModel {
            id: 1,
            source: dir.display().to_string(),
            adapter: None,
            engine: Arc::new(Engine::load_dir(&dir, &options).unwrap()),
        };
        let mut jobs = Jobs::default();
        let prompt = "The cell type is CD3E IL7R LTB MALAT1 B2M";
        let mut job = start_generation(&mut jobs, &model, prompt.into(), 16, 0.0);
        let mut pieces = Vec::new();
        let done = loop {
            let polled = job.poll();
            pieces.extend(polled.partials);
            if let Some(result) = polled.result {
                break result.unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(
            done.tokens, 16,
            "the fixture's greedy continuation has no EOS"
        );
        assert!(pieces.len() > 1, "streamed token by token, got {pieces:?}");
        assert_eq!(pieces.concat(), done.text);
    }
}
