/** conf and its JSON-schema validator, packed as a payload of its own: only commands that read settings unpack it. */
export { default as Conf } from 'conf';
