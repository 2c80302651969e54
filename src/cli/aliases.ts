// Deprecated flag names, in one place for every command (docs/cli.md, "Old names"). An old name
// stays a hidden option for one release: it parses as before, is absent from --help, and before
// the command runs it is rewritten into the new option(s), with a one-line note on stderr naming
// the flag to type instead. The command's action then sees only the new names, so no command
// carries code for its old spellings.
import { Command, Option } from 'commander';
import { ConfigError } from '../util/errors.js';

/** An option value as commander stores it (a string, a flag's boolean, a repeatable's list). */
export type OptionValue = string | boolean | string[];

export interface DeprecatedAlias {
  /** The old flag as commander spells it, e.g. '--timeout-ms <ms>' or '--refiner-in-process'. */
  flags: string;
  /** What to type instead, for the note and the help text, e.g. '--timeout <duration>'. */
  use: string;
  /**
   * The old value as new option values, keyed by commander's attribute names (e.g. `--gguf F` →
   * `{ backend: 'llama.cpp', model: F }`).
   */
  to: (value: OptionValue) => Record<string, OptionValue>;
  /** A repeatable old flag (`--adapter A --adapter B`): its values are collected into a list. */
  repeatable?: boolean;
}

/** The release that drops the old names (the note says so). */
export const ALIASES_REMOVED_IN = '0.2.0';

const registered = new WeakMap<Command, DeprecatedAlias[]>();

/**
 * New flag → the old flag the user typed for it, in this process's command line. main.ts's error
 * report uses it, so an error about `--model` says it was given as `--gguf`.
 */
const typedAs = new Map<string, string>();

/** The old flag the user typed for a new one (undefined: typed as it is, or not at all). */
export function typedFlagFor(flag: string): string | undefined {
  return typedAs.get(flag);
}

/** Attribute name commander gives an option ('--timeout-ms <ms>' → 'timeoutMs'). */
function attributeOf(flags: string): string {
  return new Option(flags).attributeName();
}

/** The long flag of a flags string ('-s, --set <kv>' → '--set'). */
function longFlag(flags: string): string {
  return new Option(flags).long ?? flags;
}

/**
 * Adds hidden, deprecated old names to a command. Call once per command, after its options.
 * A value given both by an old name and by its new name must agree (else a ConfigError names
 * both flags).
 */
export function addDeprecatedAliases(
  cmd: Command,
  aliases: readonly DeprecatedAlias[],
  io: { stderr?: (s: string) => void } = {},
): Command {
  const stderr = io.stderr ?? ((s: string): void => void process.stderr.write(s));
  for (const a of aliases) {
    const o = new Option(a.flags, `deprecated: use ${a.use}`).hideHelp();
    if (a.repeatable) o.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    cmd.addOption(o);
  }
  registered.set(cmd, [...(registered.get(cmd) ?? []), ...aliases]);
  cmd.hook('preAction', (_self, action) => {
    // Only the command the aliases belong to (a parent's hook also runs for its subcommands).
    if (action !== cmd) return;
    applyAliases(cmd, aliases, stderr);
  });
  return cmd;
}

/** The deprecated aliases a command registered (for tests and docs). */
export function deprecatedAliasesOf(cmd: Command): readonly DeprecatedAlias[] {
  return registered.get(cmd) ?? [];
}

function sameValue(a: OptionValue, b: OptionValue): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function applyAliases(
  cmd: Command,
  aliases: readonly DeprecatedAlias[],
  stderr: (s: string) => void,
): void {
  // Which flag set each new attribute, so a conflict names the flags the user typed.
  const setBy = new Map<string, string>();
  for (const a of aliases) {
    const attr = attributeOf(a.flags);
    if (cmd.getOptionValueSource(attr) !== 'cli') continue;
    const old = longFlag(a.flags);
    const value = cmd.getOptionValue(attr) as OptionValue;
    stderr(`rl4qe: ${old} is deprecated and goes in ${ALIASES_REMOVED_IN}; use ${a.use} instead\n`);
    for (const [key, v] of Object.entries(a.to(value))) {
      const source = cmd.getOptionValueSource(key);
      const current = cmd.getOptionValue(key) as OptionValue | undefined;
      const other =
        setBy.get(key) ??
        (source === 'cli'
          ? (cmd.options.find((o) => o.attributeName() === key)?.long ?? `--${key}`)
          : undefined);
      if (other !== undefined && current !== undefined && !sameValue(current, v))
        throw new ConfigError(`${old} and ${other} disagree`, {
          where: old,
          found: `${JSON.stringify(current)} vs ${JSON.stringify(v)}`,
          hint: `give only ${a.use}`,
        });
      cmd.setOptionValueWithSource(key, v, 'cli');
      setBy.set(key, old);
      const newFlag = cmd.options.find((o) => o.attributeName() === key)?.long;
      if (newFlag !== undefined) typedAs.set(newFlag, old);
    }
    cmd.setOptionValueWithSource(attr, undefined, 'default');
  }
}
