/**
 * weightmix's library surface: every command as a typed, documented function, and every type its
 * options, results, progress reports, recipes and errors use. Everything here is the public API
 * (etc/weightmix.api.md records it; `npm run check:api` fails when it changes by accident).
 *
 * @packageDocumentation
 */
// Errors
export { WeightmixError, isWeightmixError } from './errors';
export { ERROR_CODES, ERROR_CODE_NAMES } from './error-codes';
export type { WeightmixErrorCode, ErrorCodeInfo } from './error-codes';
// Options shared by the merges
export type { EngineOptions, Numerics, FilesFrom, FloatDtypeName } from './options';
export type { DeviceChoice, Device, ResolvedDevice } from './engine/device';
export type { FloatDtype } from './format/dtypes';
export type { SelectionInput } from './model/selection';
export type { MergeProgress } from './engine/execute-plan';
// Model folders
export { openCheckpoint } from './model/checkpoint';
export type { Checkpoint, TensorLocation, Shard } from './model/checkpoint';
export { classifyTensor, MODULE_CLASSES } from './model/tensor-names';
export type { ModuleClass, SelectableModule, TensorClass } from './model/tensor-names';
// Interpolation
export { interpolate } from './interpolation/interpolate';
export type { InterpolateOptions, InterpolationCommon, InterpolationSummary, MergeSummary } from './interpolation/interpolate';
export { sweep, parseLambdaList, lambdaFolderName } from './interpolation/sweep';
export type { SweepOptions } from './interpolation/sweep';
// mergekit recipes
export { merge } from './recipes/merge-recipe';
export type { MergeOptions, RecipeMergeSummary } from './recipes/merge-recipe';
export { mergeBatch } from './recipes/batch';
export type { BatchRecipe, BatchMergeOptions, BatchMergeSummary, BatchOutputSummary } from './recipes/batch';
export { parseRecipe, readRecipeFile } from './recipes/recipe';
export type { Recipe, RecipeSource, RecipeSlice, ParseRecipeOptions } from './recipes/recipe';
export type { TokenSetting, TokenRowSource } from './recipes/recipe-types';
export type { ParameterMap, ParameterSetting, ConditionalEntry, Scalar } from './recipes/recipe-params';
export type { ChatTemplateSetting } from './recipes/chat-template';
export { MERGE_METHOD_NAMES } from './merge-method-names';
export type { MergeMethodName } from './merge-method-names';
// Analysis
export { verify } from './analysis/verify';
export type {
  VerifyOptions,
  VerifyReport,
  VerifyProblem,
  RecordedRecipe,
  InterpolationRecipe,
  MergeRecipeRecord,
  RecomputeReport,
  ElementMismatch,
} from './analysis/verify';
export { diff, DIFF_REPORT_FORMAT } from './analysis/diff';
export type { DiffOptions, DiffProgress, DiffReport, DiffStats, TensorDiff, GroupDiff, LayerDiff, ModuleDiff, SkippedTensor } from './analysis/diff';
export { score, passAtK } from './analysis/score';
export type { ScoreOptions, ScoreReport, BenchmarkScore, VoteTies, TokenSource } from './analysis/score';
export type { FieldMap, FieldName, FieldPreset } from './analysis/score-fields';
export { stages } from './analysis/stages';
export type { StageOptions, StageReport, Stage, LambdaSummary } from './analysis/stages';
export { readMetricsTable } from './analysis/metrics-table';
export type { MetricsRow } from './analysis/metrics-table';
export { plotStages, plotLayerProfile, renderChart } from './analysis/plot';
export type { ChartFormat, ChartSpec, RenderedChart, LayerProfileRow } from './analysis/plot';
// The safetensors format
export { readSafetensorsHeader, encodeSafetensorsHeader, writeSafetensorsFile, SafetensorsError } from './format/safetensors';
export type { SafetensorsHeader, SafetensorsDtype, SafetensorsErrorCode, TensorEntry, EncodedSafetensorsHeader } from './format/safetensors';
// Synthetic checkpoints
export { makeCheckpointPair } from './fixtures/fixture';
export type { CheckpointPairOptions, CheckpointPair, FixtureProgress, FixtureDtype, FixtureNoise } from './fixtures/fixture';
export type { FixtureShapeName } from './fixtures/model-shapes';
// The native engine
export { loadNative } from './engine/native';
export type {
  NativeAddon,
  NativeInfo,
  NativeBuildInfo,
  NativePlan,
  PackedNativePlan,
  NativeJob,
  NativeSource,
  NativeDest,
  NativeOutput,
  NativeResult,
  NativeDtype,
  NativeOp,
  KernelTestArgs,
} from './engine/native';
// Models by Hugging Face Hub id
export { resolveModelReference } from './hub/resolve';
export type { ModelSource, HubSource, ResolveOptions } from './hub/resolve';
export type { DownloadProgress, DownloadHooks } from './hub/snapshot-download';
export type { HubPurpose } from './hub/model-files';
export { parseHubReference } from './hub/reference';
export type { HubReference } from './hub/reference';
export { hubEnvironment } from './hub/environment';
export type { HubEnvironment } from './hub/environment';
export { openModel } from './hub/open-model';
export type { ModelCheckpoint } from './hub/open-model';
export { loadTokenCounter } from './analysis/tokenizer';
export type { TokenCounter } from './analysis/tokenizer';
