// Coco's default constitution, part 4 of 4: `apply`, run once when a proposal is accepted. It
// runs the actions in order inside the proposal's transaction: if one throws, the node aborts
// the transaction, so none of the proposal's writes survive.

export function apply(proposal, proposalId) {
  const proposed = parseProposalActions(proposal);
  proposed.forEach((proposedAction, position) => {
    const definition = actions.get(proposedAction.name);
    if (definition === undefined) {
      throw new Error(`action at position ${position}: "${proposedAction.name}" is not an action of this constitution`);
    }
    try {
      definition.apply(proposedAction.args, proposalId);
    } catch (e) {
      throw new Error(`${proposedAction.name} at position ${position} failed: ${e.message}`);
    }
  });
}
