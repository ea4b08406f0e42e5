/** A recipe's YAML text read as PyYAML's safe_load reads mergekit's recipes. */
import { parseDocument, type ScalarTag, type Tags } from 'yaml';
import { WeightmixError } from '../errors';

/** The yaml library's first error as one line: its first line names line and column; the code frame after it is dropped. */
function yamlError(message: string): WeightmixError {
  const first = message.split('\n', 1)[0].trim().replace(/:$/, '');
  return new WeightmixError('InvalidRecipe', `the recipe is not valid YAML: ${first}`);
}

/** PyYAML's booleans: YAML 1.1's less its single letters (y, n, Y, N stay strings in PyYAML). */
const PYYAML_BOOLEANS = { true: /^(?:[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/, false: /^(?:[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/ };
function pyyamlBooleans(tags: Tags): Tags {
  return tags.map((t) => {
    if (typeof t !== 'object' || t.tag !== 'tag:yaml.org,2002:bool' || !(t.test instanceof RegExp)) return t;
    // Two tags, told apart by what they read: the one for true values and the one for false.
    const value = t.test.test('true') ? 'true' : t.test.test('false') ? 'false' : undefined;
    return value === undefined ? t : ({ ...t, test: PYYAML_BOOLEANS[value] } as ScalarTag);
  });
}

/** yaml's count × nested aliases bound (its default is 100): a scalar alias may recur 10,000 times, a billion laughs still fails. */
const MAX_ALIAS_COUNT = 10_000;

/**
 * The document of `text`, as PyYAML's safe_load gives it: YAML 1.1 (yes/on/off booleans, merge keys `<<: *defaults`), a repeated
 * key taking its last value, and a plain alias may recur (a 120-slice passthrough naming its model by alias); the alias limit
 * still stops exponential expansion.
 */
export function readRecipeYaml(text: string): unknown {
  const parsed = parseDocument(text, { version: '1.1', uniqueKeys: false, merge: true, customTags: pyyamlBooleans });
  if (parsed.errors.length > 0) throw yamlError(parsed.errors[0].message);
  try {
    return parsed.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    // An unresolved alias, or aliases past the library's expansion limit (a "billion laughs").
    throw yamlError((e as Error).message);
  }
}
