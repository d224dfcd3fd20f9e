"""The one yacs config tree: Dassl's key names and defaults, plus croft's keys.

Dassl keys keep Dassl's meaning (reference-spec §0.4). The global ``OPTIM.WEIGHT_DECAY``
is upstream Dassl's 5e-4; method YAMLs set their own (CRoFT's is 0.1, spec §1.7).
"""
from yacs.config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------- top level
_C.OUTPUT_DIR = "./output"
_C.RESUME = ""
_C.SEED = -1
_C.USE_CUDA = True
_C.VERBOSE = True
# Name of the PACS/VLCS split JSON that selects the held-out domain, e.g. "test_on_sketch.json".
_C.TEST_ENV = ""

# ---------------------------------------------------------------- input
_C.INPUT = CN()
_C.INPUT.SIZE = (224, 224)
_C.INPUT.INTERPOLATION = "bilinear"
_C.INPUT.TRANSFORMS = ()
_C.INPUT.NO_TRANSFORM = False
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
_C.INPUT.RRCROP_SCALE = (0.08, 1.0)

# ---------------------------------------------------------------- dataset
_C.DATASET = CN()
_C.DATASET.ROOT = ""
_C.DATASET.NAME = ""
_C.DATASET.SOURCE_DOMAINS = ()
_C.DATASET.TARGET_DOMAINS = ()
_C.DATASET.NUM_SHOTS = -1
_C.DATASET.VAL_PERCENT = 0.1
_C.DATASET.SUBSAMPLE_CLASSES = "all"
# Few-shot sampler for the training split: "class_balanced" (K per class) or
# "reference_balance" (the reference's class-agnostic per-domain sampler, spec §3.2,
# used by the original code for PACS with K > 4).
_C.DATASET.FEWSHOT_SAMPLER = "class_balanced"
# Shots per class of the validation split; -1 means "same as NUM_SHOTS".
_C.DATASET.VAL_SHOTS = -1
# Prompt: one template, or the 7-template ensemble of spec §1.2.
_C.DATASET.PROMPT_TEMPLATE = "a photo of a {}."
_C.DATASET.PROMPT_ENSEMBLE = False
# Open-set (semantic-shift) evaluation sets, by registered dataset name, e.g. ["DTD", "Food101"].
_C.DATASET.OOD_SETS = []
_C.DATASET.OOD_PER_CLASS = 100
# Folder holding dtd/, food-101/, caltech-101/ ("" = DATASET.ROOT; DomainFolder: its parent).
_C.DATASET.OOD_ROOT = ""
# Which explicit class-exclusion list applies to the open-set sets ("" = the dataset's own).
_C.DATASET.OOD_EXCLUDE = ""
# Setup-I (ImageNet46 / ImageNetOpenSet, spec §3.5): share of the classnames.txt classes drawn as
# base (ID) classes from SEED; the rest are new (open-set) classes.
_C.DATASET.BASE_RATIO = 0.4
# Open-set ImageNet-val images sampled from the new classes (the reference's 1000); -1 = all of them.
_C.DATASET.IMAGENET_OOD_SAMPLES = 1000
# Covariate-shifted variants evaluated in closed_set.per_domain (a missing one is skipped with a warning).
_C.DATASET.IMAGENET_VARIANTS = ["imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"]

# ---------------------------------------------------------------- data loader
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.K_TRANSFORMS = 1
_C.DATALOADER.RETURN_IMG0 = False
_C.DATALOADER.TRAIN_X = CN()
_C.DATALOADER.TRAIN_X.SAMPLER = "RandomSampler"
_C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_X.N_DOMAIN = 0
_C.DATALOADER.TRAIN_X.N_INS = 16
_C.DATALOADER.TEST = CN()
_C.DATALOADER.TEST.SAMPLER = "SequentialSampler"
_C.DATALOADER.TEST.BATCH_SIZE = 32

# ---------------------------------------------------------------- model
_C.MODEL = CN()
_C.MODEL.INIT_WEIGHTS = ""
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = ""
# "openai", an open_clip tag (e.g. "laion400m_e31"), a checkpoint path, or "none".
_C.MODEL.BACKBONE.PRETRAINED = "openai"
# Where OpenAI checkpoints are looked up ("" = ~/.cache/clip).
_C.MODEL.BACKBONE.CACHE_DIR = ""
_C.MODEL.HEAD = CN()
_C.MODEL.HEAD.NAME = ""
_C.MODEL.HEAD.HIDDEN_LAYERS = ()
_C.MODEL.HEAD.ACTIVATION = "relu"
_C.MODEL.HEAD.BN = True
_C.MODEL.HEAD.DROPOUT = 0.0
# Mixed precision on CUDA only: "fp32", "fp16" or "bf16" (autocast). Ignored on CPU.
_C.MODEL.AUTOCAST = "fp32"

# ---------------------------------------------------------------- optimisation
_C.OPTIM = CN()
_C.OPTIM.NAME = "adam"
_C.OPTIM.LR = 0.0003
_C.OPTIM.WEIGHT_DECAY = 5e-4
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPNING = 0.0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.RMSPROP_ALPHA = 0.99
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
_C.OPTIM.STAGED_LR = False
_C.OPTIM.NEW_LAYERS = ()
_C.OPTIM.BASE_LR_MULT = 0.1
_C.OPTIM.LR_SCHEDULER = "single_step"
_C.OPTIM.STEPSIZE = (-1,)
_C.OPTIM.GAMMA = 0.1
_C.OPTIM.MAX_EPOCH = 10
_C.OPTIM.WARMUP_EPOCH = -1
_C.OPTIM.WARMUP_TYPE = "linear"
_C.OPTIM.WARMUP_CONS_LR = 1e-5
_C.OPTIM.WARMUP_MIN_LR = 1e-5
_C.OPTIM.WARMUP_RECOUNT = True

# ---------------------------------------------------------------- train
_C.TRAIN = CN()
_C.TRAIN.CHECKPOINT_FREQ = 0
_C.TRAIN.PRINT_FREQ = 10
_C.TRAIN.COUNT_ITER = "train_x"

# ---------------------------------------------------------------- test
_C.TEST = CN()
_C.TEST.EVALUATOR = "Classification"
_C.TEST.PER_CLASS_RESULT = False
_C.TEST.COMPUTE_CMAT = False
_C.TEST.NO_TEST = False
_C.TEST.SPLIT = "test"
_C.TEST.FINAL_MODEL = "best_val"
# "standard" (all ID test samples, test transform) or "reference" (spec §2.9, §8.11).
_C.TEST.OOD_PROTOCOL = "standard"
_C.TEST.OOD_SCORES = ["energy", "mcm", "max_logit", "knn"]
# MCM temperature applied to cosine similarities.
_C.TEST.MCM_TEMPERATURE = 1.0
_C.TEST.KNN_K = 50
# Bank of the KNN score: "train" (ID training features) or "val".
_C.TEST.KNN_BANK = "val"
# Write the energy histogram / ROC plot into the run folder.
_C.TEST.PLOT = True

# ---------------------------------------------------------------- feature cache (DESIGN §5)
# Frozen image/text features computed once and stored on disk (croft/engine/feature_cache.py).
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
_C.TRAINER.NAME = ""

_C.TRAINER.CRoFT = CN()
_C.TRAINER.CRoFT.PREC = "fp32"
_C.TRAINER.CRoFT.ratio = 0.2
_C.TRAINER.CRoFT.ratio_text = 0.5
# Floats (the reference's int defaults reject 0.5 on the command line).
_C.TRAINER.CRoFT.lambda1 = 1.0
_C.TRAINER.CRoFT.lambda2 = 5.0
_C.TRAINER.CRoFT.WCCF = True
_C.TRAINER.CRoFT.gen_step = 1
# EDR reduction (spec §1.6): "mean_sumsq" (Setup-II: G from the mean of P, L2 = sum G^2)
# or "sum_meansq" (Setup-I: G from the sum of P, L2 = mean G^2).
_C.TRAINER.CRoFT.EDR_REDUCTION = "mean_sumsq"
# Whether EDR may take its WCCF branch (spec §1.6; the reference disables it for VLCS).
_C.TRAINER.CRoFT.EDR_WCCF_BRANCH = True
# Evaluation-time mixing ratios (spec §8.13); negative = use the training values.
_C.TRAINER.CRoFT.EVAL_RATIO = -1.0
_C.TRAINER.CRoFT.EVAL_RATIO_TEXT = -1.0

_C.TRAINER.ZeroshotCLIP = CN()
_C.TRAINER.ZeroshotCLIP.PREC = "fp32"

# ---- baselines (reference-spec §0.3, §6). PREC of the prompt learners: precision of the text
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

_C.TRAINER.TIP_ADAPTER = CN()
_C.TRAINER.TIP_ADAPTER.ALPHA = 1.0
_C.TRAINER.TIP_ADAPTER.BETA = 1.17
# Augmented passes over the K-shot training set that build the cache keys (the reference
# reads this key without defining it, spec §7.23).
_C.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH = 10

_C.TRAINER.DPLCLIP = CN()
_C.TRAINER.DPLCLIP.N_CTX = 16
_C.TRAINER.DPLCLIP.PREC = "fp32"
_C.TRAINER.DPLCLIP.CLASS_TOKEN_POSITION = "end"
# The MLP that maps image features to the domain prompt (the reference's top-level
# mlp_depth / mlp_width / mlp_dropout, spec §0.4).
_C.TRAINER.DPLCLIP.MLP_DEPTH = 3
_C.TRAINER.DPLCLIP.MLP_WIDTH = 512
_C.TRAINER.DPLCLIP.MLP_DROPOUT = 0.1


def get_cfg_default():
    return _C.clone()
