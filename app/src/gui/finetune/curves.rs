//! The live loss curves of a run: training loss every step, validation loss where it was
//! measured, both against the optimizer step.

use egui::{Color32, Ui};
use egui_plot::{Legend, Line, Plot, Points};

use c2s_core::train::trainer::StepRecord;

/// Colour of the training loss.
const TRAIN_COLOR: Color32 = Color32::from_rgb(230, 120, 60);
/// Colour of the validation loss (line and points).
const VAL_COLOR: Color32 = Color32::from_rgb(90, 160, 230);

/// The plot's id (its transform is kept in egui memory under it).
pub fn plot_id() -> egui::Id {
    egui::Id::new("finetune-loss")
}

/// The (step, loss) and (step, validation loss) points of `records`.
pub fn series(records: &[StepRecord]) -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
    let loss = records.iter().map(|r| [r.step as f64, r.loss]).collect();
    let val = records
        .iter()
        .filter_map(|r| Some([r.step as f64, r.val_loss?]))
        .collect();
    (loss, val)
}

/// Draws the curves.
pub fn show(ui: &mut Ui, records: &[StepRecord]) {
    let (loss, val) = series(records);
    Plot::new("finetune-loss")
        .id(plot_id())
        .height(220.0)
        .legend(Legend::default())
        .x_axis_label("step")
        .y_axis_label("loss")
        .allow_scroll(false)
        .show(ui, |plot_ui| {
            plot_ui.line(Line::new("training loss", loss).color(TRAIN_COLOR));
            if !val.is_empty() {
                plot_ui.line(Line::new("validation loss", val.clone()).color(VAL_COLOR));
                plot_ui.points(
                    Points::new("validation loss", val)
                        .radius(3.0)
                        .color(VAL_COLOR),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize, loss: f64, val_loss: Option<f64>) -> StepRecord {
        StepRecord {
            step,
            loss,
            lr: 1e-3,
            tokens: 10,
            loss_tokens: 4,
            grad_norm: 1.0,
            val_loss,
            val_accuracy: None,
            majority_rate: None,
        }
    }

    #[test]
    fn validation_points_only_where_measured() {
        let (loss, val) = series(&[record(1, 2.0, None), record(2, 1.5, Some(1.7))]);
        assert_eq!(loss, vec![[1.0, 2.0], [2.0, 1.5]]);
        assert_eq!(val, vec![[2.0, 1.7]]);
    }
}
