// Coco's default constitution, part 2 of 4: `validate`, run when a member submits a proposal.
// It checks the proposal's shape and every action's arguments without reading the KV, and
// reports every problem at once so the proposer can fix them in one go.

/** Parses proposal JSON text into its list of actions; throws a readable Error on bad shape. */
function parseProposalActions(input) {
  let proposal;
  try {
    proposal = JSON.parse(input);
  } catch (e) {
    throw new Error(`the proposal is not valid JSON (${e.message})`);
  }
  if (!isPlainObject(proposal) || !Array.isArray(proposal.actions)) {
    throw new Error('the proposal must be an object with an "actions" array, e.g. {"actions":[{"name":"set_user","args":{...}}]}');
  }
  return proposal.actions;
}

export function validate(input) {
  let proposed;
  try {
    proposed = parseProposalActions(input);
  } catch (e) {
    return { valid: false, description: e.message };
  }
  if (proposed.length === 0) return { valid: false, description: "the proposal has no actions" };
  const errors = [];
  proposed.forEach((proposedAction, position) => {
    const name = isPlainObject(proposedAction) ? proposedAction.name : undefined;
    if (typeof name !== "string") {
      errors.push(`action at position ${position} must be an object with a string "name"`);
      return;
    }
    const definition = actions.get(name);
    if (definition === undefined) {
      errors.push(`action at position ${position}: "${name}" is not an action of this constitution`);
      return;
    }
    try {
      definition.validate(proposedAction.args);
    } catch (e) {
      errors.push(`${name} at position ${position}: ${e.message}`);
    }
  });
  return { valid: errors.length === 0, description: errors.length === 0 ? "OK" : errors.join("; ") };
}
