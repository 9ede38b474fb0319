// Preloaded into the conformance suite's origin server (node --import): it
// listens on every interface by default; this binds it to 127.0.0.1 only.
import net from 'node:net'

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    return listen.call(this, args[0], '127.0.0.1', ...args.slice(1).filter(a => typeof a === 'function'))
  }
  return listen.apply(this, args)
}
