/**
 * What an API request adds to a turn (protocol.ts GenerateInput: `stop`, `seed`, `format`,
 * `functions`, `raw`), checked before anything runs and turned into node-llama-cpp's options:
 * stop texts become custom stop triggers, a format becomes a grammar (cached per schema, since
 * building one parses the schema and compiles a GBNF grammar in llama.cpp), functions pass as
 * they are. Chat turns send none of these and get exactly the options they had before.
 */
import { randomInt } from 'node:crypto';
import type { ChatModelFunctions, Llama, LlamaGrammar } from 'node-llama-cpp';
import { err, errorText, ok, type Result, type Sampling } from '../contract/index.ts';
import type { FunctionSpec, GenerateInput, GenerateOutput, OutputFormat } from '../protocol.ts';

/** The protocol's limits on `stop` (protocol.ts GenerateInput). */
export const MAX_STOP_SEQUENCES = 8;
export const MAX_STOP_CHARS = 200;

/** Schemas whose grammars are kept; a client usually repeats one or two. */
const GRAMMAR_CACHE_SIZE = 16;

/** The types node-llama-cpp's JSON schema grammar knows; it silently reads any other as `null`. */
const SCHEMA_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);

/** A checked request's API options, ready for node-llama-cpp. */
export interface ApiOptions {
  /** The stop texts (empty: none). */
  readonly stop: readonly string[];
  /** The functions the model may call, or undefined when none (an empty map counts as none). */
  readonly functions: ChatModelFunctions | undefined;
  readonly format: OutputFormat | undefined;
}

/** Checks the API fields that need no model: shapes, limits, and that `format` and `functions` are not both given. */
export function checkApiOptions(input: GenerateInput): Result<ApiOptions> {
  const { stop = [], seed, format, functions, raw } = input;
  if (!Array.isArray(stop) || stop.length > MAX_STOP_SEQUENCES || stop.some((s) => typeof s !== 'string' || s.length < 1 || s.length > MAX_STOP_CHARS)) {
    return err('INVALID_INPUT', `stop takes at most ${MAX_STOP_SEQUENCES} texts of 1 to ${MAX_STOP_CHARS} characters each.`);
  }
  if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0)) return err('INVALID_INPUT', `seed must be a whole number ≥ 0, not ${String(seed)}.`);
  if (format !== undefined) {
    const problem = formatProblem(format);
    if (problem !== null) return err('INVALID_INPUT', problem);
  }
  const fns = functions !== undefined && Object.keys(functions).length > 0 ? functions : undefined;
  if (fns !== undefined && format !== undefined) return err('INVALID_INPUT', 'A request cannot constrain its output format and offer functions at once.', 'Send either the response format or the tools.');
  if (fns !== undefined) {
    const problem = functionsProblem(fns);
    if (problem !== null) return err('INVALID_INPUT', problem);
  }
  if (raw === true) {
    if (fns !== undefined) return err('INVALID_INPUT', 'A raw completion has no chat template to offer functions in.');
    const only = input.messages.length === 1 ? input.messages[0] : undefined;
    if (only?.role !== 'user' || typeof only.text !== 'string') return err('INVALID_INPUT', 'A raw completion takes exactly one user message: the whole prompt.');
  }
  return ok({ stop, functions: fns as ChatModelFunctions | undefined, format });
}

function formatProblem(format: OutputFormat): string | null {
  if (typeof format !== 'object' || format === null) return 'format must be an object.';
  if (format.type === 'json') return null;
  if (format.type !== 'json_schema') return `Unknown output format "${String((format as { type?: unknown }).type)}".`;
  if (typeof format.schema !== 'object' || format.schema === null || Array.isArray(format.schema)) return 'A json_schema format needs its schema as an object.';
  const unknown = unsupportedType(format.schema);
  return unknown === null ? null : `The JSON schema uses the type ${JSON.stringify(unknown)}, which the grammar cannot express (it knows ${[...SCHEMA_TYPES].join(', ')}).`;
}

function functionsProblem(functions: Readonly<Record<string, FunctionSpec>>): string | null {
  for (const [name, spec] of Object.entries(functions)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(name)) return `The function name ${JSON.stringify(name)} is not usable: letters, digits, _ . - (at most 64, not starting with a digit).`;
    if (typeof spec !== 'object' || spec === null) return `The function ${name} needs a description or params object.`;
    if (spec.description !== undefined && typeof spec.description !== 'string') return `The function ${name}'s description must be text.`;
    if (spec.params !== undefined) {
      if (typeof spec.params !== 'object' || spec.params === null || Array.isArray(spec.params)) return `The function ${name}'s params must be a JSON schema object.`;
      const unknown = unsupportedType(spec.params);
      if (unknown !== null) return `The function ${name}'s params use the type ${JSON.stringify(unknown)}, which the grammar cannot express.`;
    }
  }
  return null;
}

/** Keys whose value maps names to schemas: a property called "type" there is a name, not a type. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions']);
/** Keys whose value is data, not a schema. */
const DATA_KEYS = new Set(['enum', 'const', 'default', 'examples', 'required', 'description', 'title']);

/** The first `type` in a schema (at any depth) that node-llama-cpp would not understand, or null. */
export function unsupportedType(schema: unknown, depth = 0): unknown {
  if (depth > 64 || typeof schema !== 'object' || schema === null) return null;
  const each = (values: readonly unknown[]): unknown => {
    for (const value of values) {
      const found = unsupportedType(value, depth + 1);
      if (found !== null) return found;
    }
    return null;
  };
  if (Array.isArray(schema)) return each(schema);
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'type') {
      const types = Array.isArray(value) ? value : [value];
      const bad = types.find((t) => typeof t !== 'string' || !SCHEMA_TYPES.has(t));
      if (bad !== undefined) return bad;
    } else if (SCHEMA_MAPS.has(key)) {
      if (typeof value === 'object' && value !== null) {
        const found = each(Object.values(value));
        if (found !== null) return found;
      }
    } else if (!DATA_KEYS.has(key)) {
      const found = unsupportedType(value, depth + 1);
      if (found !== null) return found;
    }
  }
  return null;
}

/**
 * Grammars for output formats, one per schema (its JSON text), the least recently used dropped
 * past GRAMMAR_CACHE_SIZE. Tied to one Llama (the bindings live as long as the process).
 */
export class GrammarCache {
  readonly #grammars = new Map<string, LlamaGrammar>();

  /** The format's grammar; a schema node-llama-cpp cannot turn into one is INVALID_INPUT. */
  async grammarFor(llama: Llama, format: OutputFormat): Promise<Result<LlamaGrammar>> {
    const key = format.type === 'json' ? 'json' : `schema:${JSON.stringify(format.schema)}`;
    const known = this.#grammars.get(key);
    if (known) {
      this.#grammars.delete(key);
      this.#grammars.set(key, known);
      return ok(known);
    }
    let grammar: LlamaGrammar;
    try {
      // The schema is the client's, typed only at run time: node-llama-cpp's own checks decide.
      grammar = format.type === 'json' ? await llama.getGrammarFor('json') : await llama.createGrammarForJsonSchema(format.schema as never);
    } catch (error) {
      return err('INVALID_INPUT', `The JSON schema cannot be turned into a grammar: ${errorText(error)}`, 'Simplify the schema (plain types, properties, required, enum, anyOf, items).');
    }
    this.#grammars.set(key, grammar);
    if (this.#grammars.size > GRAMMAR_CACHE_SIZE) this.#grammars.delete(this.#grammars.keys().next().value!);
    return ok(grammar);
  }

  get size(): number {
    return this.#grammars.size;
  }
}

/**
 * The sampler's options for node-llama-cpp: greedy at temperature 0 (no seed: nothing is random);
 * otherwise the request's seed, or a random one, since node-llama-cpp's default seed is the time
 * in whole seconds and replies sampled within one second would repeat each other.
 */
export function samplerOptions(sampling: Sampling, seed: number | undefined): { temperature: number; topP?: number; seed?: number } {
  if (!(sampling.temperature > 0)) return { temperature: 0 };
  return {
    temperature: sampling.temperature,
    ...(sampling.topP > 0 && sampling.topP < 1 ? { topP: sampling.topP } : {}),
    // llama.cpp's seed is a uint32.
    seed: seed !== undefined ? seed % 2 ** 32 : randomInt(2 ** 31),
  };
}

/** node-llama-cpp's stop reason (LlamaChat or LlamaCompletion) as the protocol's, with the stop text that ended it. */
export function stopReasonOf(
  metadata: { readonly stopReason: string; readonly customStopTrigger?: readonly (string | number)[] },
  stop: readonly string[],
): { stopReason: GenerateOutput['stopReason']; stopSequence?: string } {
  switch (metadata.stopReason) {
    case 'abort': return { stopReason: 'aborted' };
    case 'maxTokens': return { stopReason: 'maxTokens' };
    case 'functionCalls': return { stopReason: 'functionCalls' };
    case 'customStopTrigger': {
      // The triggers were given as plain texts, so the trigger's parts are text.
      const text = (metadata.customStopTrigger ?? []).filter((part): part is string => typeof part === 'string').join('');
      return { stopReason: 'stopSequence', stopSequence: stop.find((s) => s === text) ?? text };
    }
    default: return { stopReason: 'eos' };
  }
}
