// The reply of scenario 4's reply::stream, rebuilt by the caller to compare.
export function replyBody(name, lines) {
  const parts = [];
  for (let i = 0; i < lines; ++i) parts.push(`line ${i} of the reply to ${name}\n`);
  return Buffer.from(parts.join(''), 'utf8');
}
