#!/usr/bin/env node
/**
 * The bpfgate command line. Every command returns its exit code; errors go through
 * the one printer (cli/errors.ts): a BpfgateError on one line with its code, a usage
 * error as commander words it, anything else (a bug) with its stack.
 * Exit codes (core/errors.ts EXIT): 0 all expected; 1 a check failed that the baseline
 * does not expect; 2 bad input (usage, matrix, policy, config, lock files); 3 infrastructure error.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { BpfgateError } from '../core/errors.js';
import { BPFGATE_VERSION } from '../core/version.js';
import type { Arch } from '../matrix/cell.js';
import { loadConfig, type ConfigFile } from './config.js';
import { reportError, usageOutput } from './errors.js';
import { baselineCommand } from './commands/baseline.js';
import { clusterUpCommand } from './commands/cluster.js';
import { CLUSTER_MATRIX_FILE } from '../matrix/assets.js';
import { kernelsCommand } from './commands/kernels.js';
import { lintCommand } from './commands/lint.js';
import { reproCommand } from './commands/repro.js';
import { runCommand } from './commands/run.js';
import { mergeCommand } from './commands/merge.js';
import { parseShard } from '../matrix/shard.js';
import { tableCommand } from './commands/table.js';
import { triggersCommand } from './commands/triggers.js';
import { planCells } from './commands/run.js';
import { splitArgs } from '../suites/tetragon/args.js';

const list = (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
const positiveWhole = (value: string, expected: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected ${expected}`);
  return n;
};
const positiveInt = (value: string) => positiveWhole(value, 'a positive whole number');
const bootsOption = (value: string): number | 'auto' => (value === 'auto' ? 'auto' : positiveWhole(value, 'auto or a positive whole number'));
const ARCHES = ['x86_64', 'arm64'];
const shardOption = (value: string) => {
  try {
    return parseShard(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const agentArgs = (value: string) => {
  try {
    return splitArgs(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

let exitCode = 0;
let config: ConfigFile = {};

const program = new Command('bpfgate')
  .description('Multi-arch conformance test matrix for eBPF security policies (Tetragon TracingPolicies)')
  .version(BPFGATE_VERSION, '-V, --version', 'print the version of bpfgate')
  .option('--config <file>', 'config file with default settings (default: ./bpfgate.config.yaml when present)')
  .configureOutput(usageOutput())
  .showHelpAfterError('(add --help for usage)')
  .exitOverride()
  .hook('preAction', async (cmd) => {
    config = await loadConfig(cmd.opts().config as string | undefined);
  });

program
  .command('lint')
  .description('parse and validate policies against the TracingPolicy CRD; exit 1 when any policy is invalid')
  .argument('<paths...>', 'policy files or directories')
  .option('--schema <file|dir|url>', 'TracingPolicy CRD (file, directory of CRDs, or URL downloaded once and cached)')
  .option('--arch <list>', 'portability findings for these arches (x86_64,arm64)', list)
  .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
  .action(async (paths: string[], o: { schema?: string; arch?: string[]; format: 'text' | 'json' }) => {
    const bad = (o.arch ?? []).filter((a) => !ARCHES.includes(a));
    if (bad.length) throw new BpfgateError('usage', `--arch ${bad.join(',')}: expected x86_64 and/or arm64`);
    const schema = o.schema ?? config.schema;
    exitCode = await lintCommand({ paths, format: o.format, ...(schema ? { schema } : {}), ...(o.arch ? { arch: o.arch as Arch[] } : {}) });
  });

program
  .command('run')
  .description('run the suites on the matrix and write results.jsonl, junit.xml and the tables')
  .option('--matrix <file>', 'matrix file (default: the built-in default matrix)')
  .option('--policies <paths>', 'policy files or directories (repeatable, comma-separated)', list)
  .option('--suite <names>', 'suites to run: static, probe, policies, tetragon, cluster, repro (comma-separated)', list)
  .option('--triggers <paths>', 'trigger files or directories instead of the shipped ATT&CK catalogue', list)
  .option('--tetragon <bundles>', 'Tetragon release tarballs, directories or URLs (one per arch) for the tetragon suite', list)
  .option('--tetragon-args <flags>', 'extra agent flags, split as a shell splits words (e.g. "--disable-kprobe-multi")', agentArgs)
  .option('--tetragon-boots <n|auto>', 'boots per cell the tetragon suite spreads the policies over (auto: sized to the load budget under TCG, one under KVM)', bootsOption, 'auto')
  .option('--cells <globs>', 'only the cells whose id matches (comma-separated globs)')
  .option('--jobs <n>', 'cells booted at once (default: fitted to the cores)', positiveInt)
  .option('--shard <i/n>', "run only shard I of N of the cells (a CI job's part); `bpfgate merge` joins the shards' --out directories", shardOption)
  .option('--out <dir>', 'output directory', 'bpfgate-out')
  .option('--baseline <file>', 'known failures: the gate fails only on others')
  .option('--compare <dir>', 'a previous output directory: the reports open with what changed against it')
  .option('--resume', 'keep the checks already in --out and run only the rest', false)
  .option('--schema <file|dir|url>', 'TracingPolicy CRD for the static suite')
  .option('--lock <file>', 'kernel lock file (bpfgate kernels lock) to run on the same bits')
  .option('--timeout <seconds>', 'per-cell timeout (default: boot allowance plus suite budgets)', positiveInt)
  .option('--kubeconfig <file>', 'run on an existing cluster: its nodes are the cells (the kubeconfig platform)')
  .option('--kubernetes <paths>', 'Kubernetes binaries for a qemu-cluster matrix: directories, release tarballs or URLs (comma-separated)', list)
  .option('--chart <ref>', "the agent's Helm chart for the cluster suite: a reference, a directory or a .tgz")
  .option('--helm <path>', 'the helm binary (default: helm from PATH)')
  .option('--helm-values <files>', "values files for the chart, on top of bpfgate's (comma-separated)", list)
  .option('--cri', "turn on the agent's CRI lookup and cgidmap (tetragon.cri, tetragon.cgidmap)", false)
  .option('--cri-socket <path>', "the container runtime's socket on qemu-cluster nodes (e.g. K3s's /run/k3s/containerd/containerd.sock)")
  .addOption(new Option('--restart-runtime <how>', "disruptive, opt-in: restart each node's container runtime after the triggers, run them again and check their pod metadata").choices(['containerd', 'k3s']))
  .addOption(new Option('--cri-mount <kind>', "how the agent mounts the CRI socket: the chart's file mount, or its directory (upstream's later fix)").choices(['file', 'directory']))
  .action(async (o: { matrix?: string; policies?: string[]; suite?: string[]; cells?: string; jobs?: number; shard?: { index: number; count: number }; out: string; baseline?: string; compare?: string; resume: boolean; schema?: string; lock?: string; timeout?: number; triggers?: string[]; tetragon?: string[]; tetragonArgs?: string[]; tetragonBoots: number | 'auto'; kubeconfig?: string; kubernetes?: string[]; chart?: string; helm?: string; helmValues?: string[]; cri: boolean; criSocket?: string; restartRuntime?: 'containerd' | 'k3s'; criMount?: 'file' | 'directory' }) => {
    const policies = o.policies ?? config.policies ?? [];
    const opt = <T>(v: T | undefined, c: T | undefined) => v ?? c;
    exitCode = await runCommand({
      policies, resume: o.resume,
      out: o.out !== 'bpfgate-out' ? o.out : (config.out ?? o.out),
      ...defined({ suites: o.suite ?? config.suites, matrix: opt(o.matrix, config.matrix), cells: opt(o.cells, config.cells), jobs: opt(o.jobs, config.jobs),
        baseline: opt(o.baseline, config.baseline), schema: opt(o.schema, config.schema), lock: opt(o.lock, config.lock), timeoutSec: o.timeout, shard: o.shard, compare: o.compare, triggers: o.triggers, tetragon: o.tetragon, tetragonArgs: o.tetragonArgs, tetragonBoots: o.tetragonBoots,
        chart: o.chart, helm: o.helm, helmValues: o.helmValues, cri: o.cri || undefined, kubeconfig: o.kubeconfig, restartRuntime: o.restartRuntime, criMount: o.criMount,
        platformSettings: defined({ kubeconfig: o.kubeconfig, kubernetes: o.kubernetes, criSocket: o.criSocket }) }),
    });
  });

program
  .command('repro')
  .description('reproduce named bugs: ringbuf-pagesize, lsm-inactive, arm64-trampoline, tailcall-attach-type (QEMU cells), cri-socket-stale (the host\'s containerd, as root), or all')
  .argument('<names...>', 'bug names, or all')
  .option('--matrix <file>', 'matrix file (default: the built-in default matrix)')
  .option('--cells <globs>', 'only the cells whose id matches')
  .option('--jobs <n>', 'cells booted at once', positiveInt)
  .option('--out <dir>', 'output directory', 'bpfgate-repro')
  .option('--resume', 'keep the checks already in --out', false)
  .option('--tetragon <bundles>', 'Tetragon release tarballs or directories (one per arch): tailcall-attach-type then shows the agent\'s own answer beside the kernel\'s', list)
  .action(async (names: string[], o: { matrix?: string; cells?: string; jobs?: number; out: string; resume: boolean; tetragon?: string[] }) => {
    exitCode = await reproCommand({ names, out: o.out, resume: o.resume, ...defined({ matrix: o.matrix ?? config.matrix, cells: o.cells, jobs: o.jobs ?? config.jobs, tetragon: o.tetragon }) });
  });

program
  .command('table')
  .description('render the compatibility table from a results directory')
  .requiredOption('--from <dir>', 'results directory (or its results.jsonl)')
  .addOption(new Option('--format <format>', 'table format (attack: the ATT&CK Navigator layer)').choices(['md', 'html', 'json', 'attack']).default('md'))
  .option('--compare <dir>', 'a previous output directory: the report opens with what changed against it')
  .action(async (o: { from: string; format: string; compare?: string }) => {
    exitCode = await tableCommand(o);
  });

program
  .command('merge')
  .description("join the output directories of a run's shards (--shard I/N) into one: results, run.json, cell logs, every report, and the gate's exit code")
  .argument('<dirs...>', "the shards' output directories")
  .requiredOption('--out <dir>', 'output directory of the merged run')
  .option('--baseline <file>', 'known failures: the gate fails only on others')
  .action(async (dirs: string[], o: { out: string; baseline?: string }) => {
    exitCode = await mergeCommand({ dirs, out: o.out, ...defined({ baseline: o.baseline ?? config.baseline }) });
  });

program
  .command('baseline')
  .description('write the failures of a results directory as a baseline file (YAML on stdout)')
  .requiredOption('--from <dir>', 'results directory (or its results.jsonl)')
  .action(async (o: { from: string }) => {
    exitCode = await baselineCommand(o);
  });

program
  .command('cluster')
  .description('an assembled cluster (control plane on the host, one QEMU node per cell)')
  .command('up')
  .description('start the cluster of a qemu-cluster matrix and keep it running until Ctrl-C; writes a kubeconfig')
  .option('--matrix <file>', 'a matrix with platform: qemu-cluster (default: the built-in matrix/cluster.yaml)')
  .option('--cells <globs>', 'only the cells whose id matches')
  .requiredOption('--kubernetes <paths>', 'Kubernetes binaries: directories, release tarballs or URLs (comma-separated)', list)
  .option('--tetragon <bundles>', 'Tetragon release bundles whose agent images every node holds', list)
  .option('--kubeconfig-out <file>', 'where the admin kubeconfig goes', 'bpfgate-cluster.kubeconfig')
  .option('--cri-socket <path>', "the container runtime's socket on the nodes")
  .action(async (o: { matrix?: string; cells?: string; kubernetes: string[]; tetragon?: string[]; kubeconfigOut: string; criSocket?: string }) => {
    exitCode = await clusterUpCommand({ matrix: o.matrix ?? CLUSTER_MATRIX_FILE, kubernetes: o.kubernetes, tetragon: o.tetragon ?? [], kubeconfigOut: o.kubeconfigOut, ...defined({ cells: o.cells, criSocket: o.criSocket }) });
  });

const kernels = program.command('kernels').description('the kernel catalogue, its cache, and a lock file of resolved versions');
kernels
  .command('list')
  .description('the catalogue, with what is cached')
  .action(async () => {
    exitCode = await kernelsCommand('list', {});
  });
kernels
  .command('fetch')
  .description('download and extract the kernels of the matrix, and build the guest images')
  .argument('[names...]', 'catalogue names (default: the kernels of the matrix)')
  .option('--matrix <file>', 'matrix file (default: the built-in default matrix)')
  .option('--cells <globs>', 'only the kernels of these cells')
  .option('--lock <file>', 'fetch exactly the versions of this lock file')
  .action(async (names: string[], o: { matrix?: string; cells?: string; lock?: string }) => {
    const matrixCells = names.length ? undefined : await planCells(o.matrix ?? config.matrix, o.cells);
    exitCode = await kernelsCommand('fetch', { ...defined({ names: names.length ? names : undefined, matrixCells, lockFile: o.lock ?? config.lock }) });
  });
kernels
  .command('lock')
  .description('resolve the kernels of the matrix and write their versions and sha256 to a lock file')
  .option('--matrix <file>', 'matrix file (default: the built-in default matrix)')
  .option('--lock <file>', 'lock file to write', 'bpfgate.lock.json')
  .action(async (o: { matrix?: string; lock: string }) => {
    const matrixCells = await planCells(o.matrix ?? config.matrix, undefined);
    exitCode = await kernelsCommand('lock', { matrixCells, lockFile: o.lock });
  });

program
  .command('triggers')
  .description('the MITRE ATT&CK trigger catalogue')
  .command('list')
  .description('technique ids, tactics and names')
  .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
  .action(async (o: { format: 'text' | 'json' }) => {
    exitCode = await triggersCommand('list', { format: o.format });
  });

/** Drop undefined values, so optional options stay absent (exactOptionalPropertyTypes-friendly). */
function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return exitCode;
  } catch (err) {
    return reportError(err);
  }
}

process.exitCode = await main();
