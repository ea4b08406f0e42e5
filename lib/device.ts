/** Where a merge computes: `--device cpu|cuda|auto`, resolved against what the addon found on this machine. */
import { WeightmixError } from './errors';
import type { NativeInfo } from './native';

export type DeviceChoice = 'cpu' | 'cuda' | 'auto';
export type Device = 'cpu' | 'cuda';
export const DEVICE_CHOICES: readonly DeviceChoice[] = ['cpu', 'cuda', 'auto'];

/** Kinds of "no GPU" that are simply a CPU machine: `auto` says nothing about them. */
const ORDINARY_CPU_MACHINE = new Set(['not-compiled', 'no-driver', 'no-device']);

/** Why no GPU can be used, or undefined when one can. */
export function cudaUnavailableReason(info: NativeInfo): string | undefined {
  if (info.cudaCompiled && info.cudaDevices && info.cudaDevices.length > 0) return undefined;
  return info.cudaUnavailable ?? (info.cudaCompiled ? 'no usable CUDA device' : 'this build has no CUDA kernels (built without nvcc)');
}

/**
 * `cuda` without a usable GPU is an error naming the reason; `auto` takes the GPU when usable, else
 * the CPU, with one notice when a GPU is there but unusable (out of memory, unsupported, driver too
 * old). A machine with no NVIDIA driver or device falls back silently (`weightmix info` says why).
 */
export function resolveDevice(choice: DeviceChoice, info: NativeInfo, onNotice?: (message: string) => void): Device {
  if (choice === 'cpu') return 'cpu';
  const reason = cudaUnavailableReason(info);
  if (reason === undefined) return 'cuda';
  if (choice === 'cuda') throw new WeightmixError('CudaUnavailable', `--device cuda: no usable GPU: ${reason}`);
  if (!ORDINARY_CPU_MACHINE.has(info.cudaUnavailableKind ?? 'not-compiled')) onNotice?.(`no usable GPU (${reason}); merging on the CPU`);
  return 'cpu';
}
