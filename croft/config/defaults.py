"""The one yacs config tree: Dassl's key names and defaults, plus croft's keys.

Dassl keys keep Dassl's meaning, so Dassl/CoOp YAML files and command lines parse. Every key
either has an effect in croft (the comment above it says which) or is a Dassl key that croft
accepts only at its default: those are listed, with the reason, in
``croft/config/unsupported.py`` and rejected by ``check_unsupported`` when set. Dataset keys that
one dataset does not read are rejected by that dataset's ``check_cfg``.

The global ``OPTIM.WEIGHT_DECAY`` is upstream Dassl's 5e-4; method YAMLs set their own (CRoFT's
is 0.1, the value the original CRoFT code ran with).
"""
from yacs.config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------- top level
# Run folder: log.txt, config.yaml, checkpoints, results.json (README.md, "What a run writes").
_C.OUTPUT_DIR = "./output"
# Checkpoint folder to resume from ("" = OUTPUT_DIR).
_C.RESUME = ""
# Seeds Python, NumPy and torch, the few-shot draws, the splits and the shuffles; -1 = unseeded.
_C.SEED = -1
# False runs on the CPU even when CUDA is available.
_C.USE_CUDA = True
# Unsupported (Dassl's extra printing): croft's logging does not depend on it.
_C.VERBOSE = True
# Name of the PACS/VLCS split JSON that selects the held-out domain, e.g. "test_on_sketch.json".
_C.TEST_ENV = ""

# ---------------------------------------------------------------- input
_C.INPUT = CN()
# Image size (height, width) of the transforms.
_C.INPUT.SIZE = (224, 224)
# Resize interpolation: "bilinear", "bicubic" or "nearest".
_C.INPUT.INTERPOLATION = "bilinear"
# Transform ops from "random_resized_crop", "random_flip", "center_crop", "normalize": training
# uses the random ones; the test transform is resize + center crop; "normalize" (or an empty
# list) adds the normalisation below (docs/method.md §7.1).
_C.INPUT.TRANSFORMS = ()
# Unsupported: croft always applies the transforms above.
_C.INPUT.NO_TRANSFORM = False
# Normalisation of the "normalize" op (CLIP's values in the method YAMLs).
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
# Scale range of "random_resized_crop".
_C.INPUT.RRCROP_SCALE = (0.08, 1.0)

# ---------------------------------------------------------------- dataset
_C.DATASET = CN()
# The data folder, laid out as in datasets/README.md.
_C.DATASET.ROOT = ""
# A registered dataset: PACS, VLCS, DomainFolder, ImageNet46 (= ImageNetOpenSet, ImageNetOOD46), or one of
# CoOp's 11 few-shot datasets (OxfordPets, OxfordFlowers, FGVCAircraft, DescribableTextures, EuroSAT,
# StanfordCars, Food101, SUN397, Caltech101, UCF101, ImageNet; docs/protocols.md §8).
_C.DATASET.NAME = ""
# PACS/VLCS/DomainFolder: restrict training and val to these source domains (default: all but
# the held-out one). Not read by ImageNet46 (an error when set).
_C.DATASET.SOURCE_DOMAINS = ()
# PACS/VLCS/DomainFolder: the held-out domain (one name), instead of TEST_ENV.
_C.DATASET.TARGET_DOMAINS = ()
# Training images per class (K); < 1 = all. CoOp's datasets: K and SEED pick CoOp's few-shot subsets.
_C.DATASET.NUM_SHOTS = -1
# Share of each source (domain, class) folder that goes to val when PACS/VLCS/DomainFolder build
# their split from the image folders (no test_on_<domain>.json). croft's folder-layout split uses
# 20%, as tools/prepare_splits.py (docs/method.md §7.3), so the default is 0.2 (Dassl's is 0.1).
# Not applicable where
# val comes from a split file (a non-default value is then an error) or from VAL_SHOTS
# (ImageNet46: an error when set).
_C.DATASET.VAL_PERCENT = 0.2
# CoCoOp's base-to-new protocol (Zhou et al., "Conditional Prompt Learning for Vision-Language
# Models", CVPR 2022): "all" classes, or the "base" (first ceil(C/2) labels) or "new" (the rest)
# half, relabelled 0..m-1, in train, val and every test set; the open-set sets are untouched.
_C.DATASET.SUBSAMPLE_CLASSES = "all"
# Few-shot sampler for the training split: "class_balanced" (K per class) or
# "reference_balance" (the original CRoFT code's class-agnostic per-domain sampler, used for
# PACS with K > 4; docs/method.md §7.2). ImageNet46: "class_balanced" only.
_C.DATASET.FEWSHOT_SAMPLER = "class_balanced"
# Shots per class of the validation split; -1 means "same as NUM_SHOTS" (ImageNet46: 4; CoOp's datasets:
# min(NUM_SHOTS, 4), fixed).
_C.DATASET.VAL_SHOTS = -1
# Prompt: one template, or the 7-template ensemble of the CRoFT paper's Setup-I.
_C.DATASET.PROMPT_TEMPLATE = "a photo of a {}."
_C.DATASET.PROMPT_ENSEMBLE = False
# Open-set (semantic-shift) evaluation sets, by name, e.g. ["DTD", "Food101"] (DTD, Food101,
# Caltech101, Flowers102; each at most once).
_C.DATASET.OOD_SETS = []
# Images per class of each open-set set (< 1 = all).
_C.DATASET.OOD_PER_CLASS = 100
# Folder holding dtd/, food-101/, caltech-101/, oxford_flowers/ ("" = DATASET.ROOT; DomainFolder: its parent).
_C.DATASET.OOD_ROOT = ""
# Which explicit class-exclusion list applies to the open-set sets: "PACS", "VLCS", "none"
# ("" = the dataset's own; docs/method.md §7.5).
_C.DATASET.OOD_EXCLUDE = ""
# ImageNet46 only (Setup-I, docs/method.md §7.4): share of the classnames.txt classes drawn as
# base (ID) classes from SEED; the rest are new (open-set) classes.
_C.DATASET.BASE_RATIO = 0.4
# ImageNet46 only: open-set ImageNet-val images sampled from the new classes (the original
# code's 1000); -1 = all of them.
_C.DATASET.IMAGENET_OOD_SAMPLES = 1000
# ImageNet46 only: covariate-shifted variants evaluated in closed_set.per_domain (a missing one
# is skipped with a warning).
_C.DATASET.IMAGENET_VARIANTS = ["imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"]

# ---------------------------------------------------------------- data loader
_C.DATALOADER = CN()
# Loader worker processes (0 = load in the main process).
_C.DATALOADER.NUM_WORKERS = 4
# Unsupported: croft draws one augmented view per image and step.
_C.DATALOADER.K_TRANSFORMS = 1
# Unsupported: croft's batches carry no un-augmented copy of the image.
_C.DATALOADER.RETURN_IMG0 = False
_C.DATALOADER.TRAIN_X = CN()
# Unsupported except "RandomSampler", which is what croft does: a seeded shuffle per epoch.
_C.DATALOADER.TRAIN_X.SAMPLER = "RandomSampler"
# Training batch size (the last partial batch is dropped when the set holds a full one).
_C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
# Unsupported: parameters of Dassl's domain-balanced samplers, which croft does not have.
_C.DATALOADER.TRAIN_X.N_DOMAIN = 0
_C.DATALOADER.TRAIN_X.N_INS = 16
_C.DATALOADER.TEST = CN()
# Unsupported except "SequentialSampler", which is what croft does: evaluation sets in order.
_C.DATALOADER.TEST.SAMPLER = "SequentialSampler"
# Batch size of every evaluation loader.
_C.DATALOADER.TEST.BATCH_SIZE = 32

# ---------------------------------------------------------------- model
_C.MODEL = CN()
# Unsupported: the frozen CLIP's weights come from MODEL.BACKBONE.PRETRAINED, and a trained run
# is loaded with --eval-only --model-dir or resumed with --resume.
_C.MODEL.INIT_WEIGHTS = ""
_C.MODEL.BACKBONE = CN()
# CLIP backbone: "RN50", "ViT-B/16", ..., or "tiny" (the test backbone).
_C.MODEL.BACKBONE.NAME = ""
# "openai", an open_clip tag (e.g. "laion400m_e31"), a checkpoint path, or "none".
_C.MODEL.BACKBONE.PRETRAINED = "openai"
# Where OpenAI checkpoints are looked up ("" = ~/.cache/clip).
_C.MODEL.BACKBONE.CACHE_DIR = ""
# Load a MODEL.BACKBONE.PRETRAINED file in TorchScript format (loading one can run code: only for
# files you trust). OpenAI's own files under the "openai" tag always load.
_C.MODEL.BACKBONE.ALLOW_TORCHSCRIPT = False
# Unsupported (Dassl's MLP head on the backbone; --head sets NAME): every croft method defines
# its own head on the frozen CLIP features.
_C.MODEL.HEAD = CN()
_C.MODEL.HEAD.NAME = ""
_C.MODEL.HEAD.HIDDEN_LAYERS = ()
_C.MODEL.HEAD.ACTIVATION = "relu"
_C.MODEL.HEAD.BN = True
_C.MODEL.HEAD.DROPOUT = 0.0
# Mixed precision of the frozen image encoder on CUDA only: "fp32", "fp16" or "bf16" (autocast).
# Ignored on CPU.
_C.MODEL.AUTOCAST = "fp32"

# ---------------------------------------------------------------- optimisation
# One optimizer and scheduler per trained model (croft/engine/optim.py), with Dassl's meanings.
_C.OPTIM = CN()
# "sgd", "adam", "adamw" or "rmsprop".
_C.OPTIM.NAME = "adam"
_C.OPTIM.LR = 0.0003
_C.OPTIM.WEIGHT_DECAY = 5e-4
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPNING = 0.0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.RMSPROP_ALPHA = 0.99
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
# Unsupported: a lower learning rate for the "old" layers; croft trains only new modules
# (adapters, prompts) on a frozen CLIP, all at OPTIM.LR.
_C.OPTIM.STAGED_LR = False
_C.OPTIM.NEW_LAYERS = ()
_C.OPTIM.BASE_LR_MULT = 0.1
# "single_step", "multi_step" or "cosine", stepped once per epoch.
_C.OPTIM.LR_SCHEDULER = "single_step"
_C.OPTIM.STEPSIZE = (-1,)
_C.OPTIM.GAMMA = 0.1
_C.OPTIM.MAX_EPOCH = 10
# Warm-up epochs (<= 0 = none), "constant" (at WARMUP_CONS_LR) or "linear" (WARMUP_MIN_LR, then
# a linear ramp); WARMUP_RECOUNT restarts the main schedule's epoch count after the warm-up.
_C.OPTIM.WARMUP_EPOCH = -1
_C.OPTIM.WARMUP_TYPE = "linear"
_C.OPTIM.WARMUP_CONS_LR = 1e-5
_C.OPTIM.WARMUP_MIN_LR = 1e-5
_C.OPTIM.WARMUP_RECOUNT = True

# ---------------------------------------------------------------- train
_C.TRAIN = CN()
# Also save a checkpoint every N epochs (0 = only the last epoch's and the best-val one).
_C.TRAIN.CHECKPOINT_FREQ = 0
# Log every N training batches.
_C.TRAIN.PRINT_FREQ = 10
# Also write the per-epoch scalars of metrics.jsonl to OUTPUT_DIR/tensorboard/ (needs tensorboard).
_C.TRAIN.TENSORBOARD = False
# Unsupported: an epoch is always one pass over train_x (croft has no unlabelled train_u).
_C.TRAIN.COUNT_ITER = "train_x"

# ---------------------------------------------------------------- test
_C.TEST = CN()
# Unsupported except "Classification", which is what croft does (closed-set accuracy plus the
# open-set metrics in results.json).
_C.TEST.EVALUATOR = "Classification"
# Unsupported: results.json holds overall and per-domain accuracies, no per-class table.
_C.TEST.PER_CLASS_RESULT = False
# Unsupported: no confusion matrix is computed.
_C.TEST.COMPUTE_CMAT = False
# Skip the final evaluation (implemented by the engine).
_C.TEST.NO_TEST = False
# Which split the final evaluation reports, "test" or "val" (implemented by the engine).
_C.TEST.SPLIT = "test"
# Model of the final evaluation: "best_val" (best validation accuracy) or "last_step".
_C.TEST.FINAL_MODEL = "best_val"
# "standard" (all ID test samples, test transform) or "reference" (the original CRoFT code's
# protocol); docs/protocols.md §4.
_C.TEST.OOD_PROTOCOL = "standard"
_C.TEST.OOD_SCORES = ["energy", "mcm", "max_logit", "knn"]
# MCM temperature applied to cosine similarities.
_C.TEST.MCM_TEMPERATURE = 1.0
_C.TEST.KNN_K = 50
# Bank of the KNN score: "train" (ID training features) or "val".
_C.TEST.KNN_BANK = "val"
# Write the energy histogram / ROC plot into the run folder.
_C.TEST.PLOT = True

# ---------------------------------------------------------------- feature cache (docs/benchmark.md)
# Frozen image/text features computed once and stored on disk (README.md, "Speed").
_C.CACHE = CN()
# False runs the online pipeline (the image encoder on every batch).
_C.CACHE.ENABLED = True
# "" = $CROFT_CACHE_DIR, else $XDG_CACHE_HOME/croft/features, else ~/.cache/croft/features.
_C.CACHE.DIR = ""
# Augmented training views per image; epoch e uses view e mod TRAIN_VIEWS (cached or not).
# -1 = OPTIM.MAX_EPOCH (every epoch sees a fresh view, as online augmentation).
_C.CACHE.TRAIN_VIEWS = -1
# Batch size of the encoding pass (0 = DATALOADER.TEST.BATCH_SIZE).
_C.CACHE.ENCODE_BATCH_SIZE = 0
# Most entries per chunk file.
_C.CACHE.CHUNK_SIZE = 4096

# ---------------------------------------------------------------- trainers
_C.TRAINER = CN()
# A registered trainer: CRoFT, ZeroshotCLIP, CoOp, CoCoOp, CLIP_Adapter, TIP_ADAPTER, DPLCLIP, BCAL, VLAD, FT, LP_FT.
_C.TRAINER.NAME = ""

# CRoFT (ICML 2024).
_C.TRAINER.CRoFT = CN()
# Unsupported: CRoFT's adapters train in fp32; the frozen encoder follows MODEL.AUTOCAST.
_C.TRAINER.CRoFT.PREC = "fp32"
# Mixing ratios of the image and text adapters into the raw CLIP features.
_C.TRAINER.CRoFT.ratio = 0.2
_C.TRAINER.CRoFT.ratio_text = 0.5
# Weights of the generator's same-class term / EDR's alignment term (lambda1) and of the
# energy-gradient term (lambda2). Floats (the original int defaults reject 0.5 on the command line).
_C.TRAINER.CRoFT.lambda1 = 1.0
_C.TRAINER.CRoFT.lambda2 = 5.0
# Whether the feature generator is trained and EDR keeps its L1 term (False: lambda2 * L2 only).
_C.TRAINER.CRoFT.WCCF = True
# Generator updates per batch.
_C.TRAINER.CRoFT.gen_step = 1
# EDR reduction: "mean_sumsq" (Setup-II: G from the mean of P, L2 = sum G^2)
# or "sum_meansq" (Setup-I: G from the sum of P, L2 = mean G^2); docs/method.md §3.2.
_C.TRAINER.CRoFT.EDR_REDUCTION = "mean_sumsq"
# Whether EDR may take its WCCF branch (the original code disables it for VLCS; docs/method.md §3.1).
_C.TRAINER.CRoFT.EDR_WCCF_BRANCH = True
# Evaluation-time mixing ratios; negative = use the training values (docs/method.md §4.5).
_C.TRAINER.CRoFT.EVAL_RATIO = -1.0
_C.TRAINER.CRoFT.EVAL_RATIO_TEXT = -1.0

_C.TRAINER.ZeroshotCLIP = CN()
# Unsupported: zero-shot CLIP's precision is MODEL.AUTOCAST.
_C.TRAINER.ZeroshotCLIP.PREC = "fp32"
# Class prompts: "dataset" (follow DATASET.PROMPT_ENSEMBLE), "template" (DATASET.PROMPT_TEMPLATE
# alone) or "ensemble" (the 7 templates). imagenet46.yaml sets "template", the original's zero-shot
# CLIP prompt on ImageNet46 (docs/differences.md, "Prompts per method").
_C.TRAINER.ZeroshotCLIP.PROMPTS = "dataset"

# ---- baselines (README.md, "Methods"). PREC of the prompt learners: precision of the text
# tower that the prompts pass through ("fp16" casts it to half, "amp" autocasts, "fp32");
# fp16/amp need CUDA and fall back to fp32 with a warning on a CPU. The frozen image encoder
# follows MODEL.AUTOCAST (shared with the feature cache).
_C.TRAINER.COOP = CN()
_C.TRAINER.COOP.N_CTX = 16
# Class-specific contexts (one context per class) instead of one shared context.
_C.TRAINER.COOP.CSC = False
# Words that initialise the context (e.g. "a photo of a"); sets N_CTX to their token count.
_C.TRAINER.COOP.CTX_INIT = ""
_C.TRAINER.COOP.PREC = "fp32"
# Where the class name goes: "end", "middle" or "front".
_C.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"

_C.TRAINER.COCOOP = CN()
_C.TRAINER.COCOOP.N_CTX = 16
_C.TRAINER.COCOOP.CTX_INIT = ""
_C.TRAINER.COCOOP.PREC = "fp32"
_C.TRAINER.COCOOP.CLASS_TOKEN_POSITION = "end"
# At most this many prompts (images x classes) per text-encoder pass; gradients are accumulated
# over passes, so results do not depend on it (it only bounds memory).
_C.TRAINER.COCOOP.TEXT_CHUNK = 1024

_C.TRAINER.CLIP_Adapter = CN()
# Residual ratio: features = RATIO * adapter(x) + (1 - RATIO) * x.
_C.TRAINER.CLIP_Adapter.RATIO = 0.2
# Bottleneck width D / REDUCTION.
_C.TRAINER.CLIP_Adapter.REDUCTION = 4
# Class prompts, as TRAINER.ZeroshotCLIP.PROMPTS: "dataset", "template" or "ensemble".
# imagenet46.yaml sets "template", the original CLIP-Adapter's prompt on ImageNet46.
_C.TRAINER.CLIP_Adapter.PROMPTS = "dataset"

_C.TRAINER.TIP_ADAPTER = CN()
# Tip-Adapter's alpha (weight of the cache logits) and beta (sharpness of the key affinities).
_C.TRAINER.TIP_ADAPTER.ALPHA = 1.0
_C.TRAINER.TIP_ADAPTER.BETA = 1.17
# Augmented passes over the K-shot training set that build the cache keys (the original
# Tip-Adapter-F code reads this key without defining it).
_C.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH = 10

_C.TRAINER.DPLCLIP = CN()
_C.TRAINER.DPLCLIP.N_CTX = 16
_C.TRAINER.DPLCLIP.PREC = "fp32"
_C.TRAINER.DPLCLIP.CLASS_TOKEN_POSITION = "end"
# The MLP that maps image features to the domain prompt (the original code's top-level
# mlp_depth / mlp_width / mlp_dropout).
_C.TRAINER.DPLCLIP.MLP_DEPTH = 3
_C.TRAINER.DPLCLIP.MLP_WIDTH = 512
_C.TRAINER.DPLCLIP.MLP_DROPOUT = 0.1

# Bayes-CAL (docs/method.md §6.8): a variational class-name context and a variational
# domain-name context, each learnt as a mean and a scale.
_C.TRAINER.BCAL = CN()
_C.TRAINER.BCAL.N_CTX = 16
# Class-specific (name-specific) contexts instead of one shared context per learner.
_C.TRAINER.BCAL.CSC = False
# Words that initialise both contexts (e.g. "a photo of a"); sets N_CTX to their token count.
_C.TRAINER.BCAL.CTX_INIT = ""
_C.TRAINER.BCAL.PREC = "fp32"
# Where the class (or domain) name goes: "end", "middle" or "front".
_C.TRAINER.BCAL.CLASS_TOKEN_POSITION = "end"
# Weights of the domain-name CE (alpha1), the IRM penalty (alpha2) and the gradient-orthogonality
# term (alpha3, which changes the reported loss only). The reference's top-level alpha1..3 and
# their defaults; its scripts pass 0.01, 0.5, 0.01 (configs/trainers/BCAL/defaults.yaml).
_C.TRAINER.BCAL.alpha1 = 0.1
_C.TRAINER.BCAL.alpha2 = 0.1
_C.TRAINER.BCAL.alpha3 = 0.1
# Initial value of every context scale sigma (the noise std is sigma**2); the reference's
# constructor default.
_C.TRAINER.BCAL.SIGMA_INIT = 1e-5

# VLAD (docs/method.md §6.9): a residual adapter on the image features with a
# neighbourhood-alignment regulariser. Key names and defaults as the reference's.
_C.TRAINER.VLAD = CN()
# Residual ratio of the image adapter: ratio * fc(x) + (1 - ratio) * x.
_C.TRAINER.VLAD.ratio = 0.2
# Residual ratio of the text adapter (TEXT_ENHANCED only).
_C.TRAINER.VLAD.ratio_text = 0.2
# Weights of the alignment term L_a (lambda1) and the divergence term L_d (lambda2); 0 turns a
# term off.
_C.TRAINER.VLAD.lambda1 = 0.0
_C.TRAINER.VLAD.lambda2 = 0.0
# Neighbours per anchor in the regulariser's pair selection.
_C.TRAINER.VLAD.knn = 10
# The adapter: Linear(D, D) (False) or Linear(D, D/4) -> ReLU -> Linear(D/4, D) -> ReLU (True).
_C.TRAINER.VLAD.non_linear_adapter = False
# Also adapt the class text features with a second adapter of the same form.
_C.TRAINER.VLAD.TEXT_ENHANCED = False
# Pair selection of the regulariser: "reference" (the reference's rule, which compares the
# sorted sample indices with knn) or "knn" (the knn most similar samples).
_C.TRAINER.VLAD.NEIGHBOURS = "reference"
# Class prompts, as TRAINER.ZeroshotCLIP.PROMPTS: "template" (DATASET.PROMPT_TEMPLATE alone, the
# reference's single template), "ensemble" or "dataset".
_C.TRAINER.VLAD.PROMPTS = "template"

# FT (docs/method.md §6.10): CLIP's image encoder and a linear head, initialised as the zero-shot
# classifier, fine-tuned end to end with cross-entropy (the optimiser: OPTIM, AdamW in its configs).
_C.TRAINER.FT = CN()
# Prompts of the zero-shot head, as TRAINER.ZeroshotCLIP.PROMPTS: "dataset", "template" or "ensemble"
# (imagenet46.yaml sets "template", as for zero-shot CLIP).
_C.TRAINER.FT.PROMPTS = "dataset"
# WiSE-FT (Wortsman et al., CVPR 2022) at the final evaluation: every weight of the encoder and the
# head is (1 - alpha) * zero-shot + alpha * fine-tuned; 1 = the fine-tuned model, 0 = zero-shot CLIP.
# An evaluation key: --eval-only may change it (validation during training always uses 1).
_C.TRAINER.FT.WISE_ALPHA = 1.0

# LP-FT (Kumar et al., ICLR 2022): FT's model, the head trained alone for LP_EPOCHS epochs, then everything.
_C.TRAINER.LP_FT = CN()
_C.TRAINER.LP_FT.PROMPTS = "dataset"
_C.TRAINER.LP_FT.WISE_ALPHA = 1.0
# Linear-probe epochs (the encoder frozen) before full fine-tuning; fewer than OPTIM.MAX_EPOCH.
_C.TRAINER.LP_FT.LP_EPOCHS = 10
# Constant learning rate of the head during the linear probe (OPTIM's schedule applies after it).
_C.TRAINER.LP_FT.LP_LR = 1e-3


def get_cfg_default():
    return _C.clone()
