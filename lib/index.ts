/** weightmix's library surface: every command as a typed, documented function. */
export { WeightmixError, isWeightmixError } from './errors';
export { openCheckpoint } from './checkpoint';
export type { Checkpoint, TensorLocation, Shard } from './checkpoint';
export { interpolate } from './interpolate';
export type { InterpolateOptions, InterpolationCommon, MergeSummary, MergeProgress } from './interpolate';
export { sweep, parseLambdaList, lambdaFolderName } from './sweep';
export type { SweepOptions } from './sweep';
export { merge } from './merge';
export { diff } from './analysis/diff';
export { score, passAtK } from './analysis/score';
export { stages } from './analysis/stages';
export { readMetricsTable } from './analysis/metrics-table';
export { plotStages, plotLayerProfile, renderChart } from './analysis/plot';
export { classifyTensor, MODULE_CLASSES } from './tensor-names';
export { readSafetensorsHeader, encodeSafetensorsHeader, writeSafetensorsFile, SafetensorsError } from './safetensors';
export { makeCheckpointPair } from './fixture';
export { loadNative } from './native';
