"""Published numbers the benchmark tables print beside ours, each with its source (never measured here).

Cells are (PSNR, SSIM) on Y over Set5, Set14, BSD100, Urban100, Manga109 (all 109 images); None where the
source has no value. Sources: `../shared/REFERENCE_NUMBERS.md` and the CausalSR paper (`../shared/paper`).
"""
from __future__ import annotations

DATASETS = ("Set5", "Set14", "BSD100", "Urban100", "Manga109")
Cell = tuple[float, float] | None

PAPER_T2 = "CausalSR paper, Table II (as the paper prints it)"
TABLE2: dict[str, tuple[str, dict[int, list[Cell]]]] = {
    "EDSR": (PAPER_T2 + "; trained on DIV2K", {
        2: [(38.11, 0.9602), (33.92, 0.9195), (32.32, 0.9013), (32.93, 0.9351), (39.10, 0.9773)],
        4: [(32.46, 0.8968), (28.80, 0.7876), (27.71, 0.7420), (26.64, 0.8033), (31.02, 0.9148)]}),
    "RCAN": (PAPER_T2 + "; trained on DIV2K", {
        2: [(38.27, 0.9614), (34.12, 0.9216), (32.41, 0.9027), (33.34, 0.9384), (39.44, 0.9786)],
        4: [(32.63, 0.9002), (28.87, 0.7889), (27.77, 0.7436), (26.82, 0.8087), (31.22, 0.9173)]}),
    "SwinIR": (PAPER_T2 + "; trained on DF2K", {
        2: [(38.42, 0.9623), (34.46, 0.9250), (32.53, 0.9041), (33.81, 0.9427), (39.92, 0.9797)],
        4: [(32.92, 0.9044), (29.11, 0.7956), (27.92, 0.7489), (27.45, 0.8254), (32.03, 0.9260)]}),
    "CausalSR (paper)": (PAPER_T2 + "; trained on DF2K", {
        2: [(38.48, 0.9621), (34.52, 0.9249), (32.55, 0.9040), (33.84, 0.9430), (39.62, 0.9782)],
        4: [(33.01, 0.9049), (29.10, 0.7952), (27.98, 0.7508), (27.68, 0.8311), (32.43, 0.9291)]}),
    "MemNet": ("REFERENCE_NUMBERS.md section 10 [S]; trained on the same 291 images as ours", {
        2: [(37.78, 0.9597), (33.28, 0.9142), (32.08, 0.8978), (31.31, 0.9195), None],
        4: [(31.74, 0.8893), (28.26, 0.7723), (27.40, 0.7281), (25.50, 0.7630), None]}),
    "DAT-light": ("DAT supplementary Table 2 [P] (REFERENCE_NUMBERS.md section 2); trained on DF2K", {
        2: [(38.24, 0.9614), (34.01, 0.9214), (32.34, 0.9019), (32.89, 0.9346), (39.49, 0.9788)],
        3: [(34.76, 0.9299), (30.63, 0.8474), (29.29, 0.8103), (28.89, 0.8666), (34.55, 0.9501)],
        4: [(32.57, 0.8991), (28.87, 0.7879), (27.74, 0.7428), (26.64, 0.8033), (31.37, 0.9178)]}),
    "bicubic": ("RCAN Table 3 [P] (REFERENCE_NUMBERS.md section 1)", {
        2: [(33.66, 0.9299), (30.24, 0.8688), (29.56, 0.8431), (26.88, 0.8403), (30.80, 0.9339)],
        3: [(30.39, 0.8682), (27.55, 0.7742), (27.21, 0.7385), (24.46, 0.7349), (26.95, 0.8556)],
        4: [(28.42, 0.8104), (26.00, 0.7027), (25.96, 0.6675), (23.14, 0.6577), (24.89, 0.7866)]}),
}

TABLE5_SOURCE = "CausalSR paper, Table V (as the paper prints it; its hardware is not stated)"
# method: (params M, GFLOPs at 720p x4, training GB, inference GB, runtime ms x2, x3, x4)
TABLE5 = {
    "RCAN": (15.59, 916.9, 11.2, 2.8, 52.4, 48.6, 45.8),
    "SwinIR": (11.82, 788.4, 9.8, 2.4, 89.2, 82.5, 76.3),
    "Real-ESRGAN": (16.70, 1029.5, 12.4, 3.2, 96.8, 91.4, 84.7),
    "EDT": (9.28, 682.3, 8.6, 1.9, 44.5, 41.2, 38.6),
    "CausalSR (paper)": (8.45, 594.7, 7.9, 1.7, 42.8, 39.5, 36.9),
}
