// The benchmark's JS logging app: the same paths, bodies, map and encoding as the built-in
// logging app (src/apps/logging), so the two can be driven by the same load and compared. Keys
// are the id as decimal text, values the message as a JSON string, in the private map `records`.
const records = ccf.kv["records"];

function badRequest(message) {
  return { statusCode: 400, body: { error: { code: "InvalidInput", message } } };
}

function isValidId(id) {
  return Number.isSafeInteger(id) && id >= 0;
}

export function recordPrivate(request) {
  let body;
  try {
    body = request.body.json();
  } catch {
    return badRequest('Request body is not valid JSON: expected {"id": <non-negative integer>, "msg": <string>}.');
  }
  if (typeof body !== "object" || body === null) return badRequest('Request body must be a JSON object {"id", "msg"}.');
  if (!isValidId(body.id)) return badRequest("Field 'id' must be a non-negative integer.");
  if (typeof body.msg !== "string" || body.msg.length === 0) return badRequest("Field 'msg' must be a non-empty string.");
  records.set(ccf.strToBuf(String(body.id)), ccf.jsonCompatibleToBuf(body.msg));
  return { body: true };
}

export function readPrivate(request) {
  const match = /(?:^|&)id=(\d{1,16})(?:&|$)/.exec(request.query);
  if (match === null) return badRequest("Query parameter 'id' must be a non-negative integer.");
  const value = records.get(ccf.strToBuf(match[1]));
  if (value === undefined) return { statusCode: 404, body: { error: { code: "ResourceNotFound", message: `No such record: ${match[1]}.` } } };
  return { body: { msg: ccf.bufToJsonCompatible(value) } };
}
