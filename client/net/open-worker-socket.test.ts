/**
 * The transports a worker's socket may use: a page reaching a server of another origin speaks websocket only
 * (long-polling there would need CORS, which the servers do not allow).
 */
import { describe, expect, it } from 'vitest';
import { transportFor } from './open-worker-socket.js';

describe('transportFor', () => {
  it('lets a page fall back to long-polling on its own server only', () => {
    expect(transportFor('https://grid.example', 'https://grid.example')).toEqual({ transports: ['websocket', 'polling'] });
    expect(transportFor('/', 'https://grid.example')).toEqual({ transports: ['websocket', 'polling'] });
    expect(transportFor('https://grid-2.example', 'https://grid.example')).toEqual({ transports: ['websocket'] });
    expect(transportFor('http://grid.example', 'https://grid.example')).toEqual({ transports: ['websocket'] });
  });

  it('outside a browser there is no origin to cross; a bound worker speaks websocket from its address', () => {
    expect(transportFor('http://127.0.0.1:8080', undefined)).toEqual({ transports: ['websocket', 'polling'] });
    expect(transportFor('http://127.0.0.1:8080', undefined, '127.0.0.2')).toEqual({ transports: ['websocket'], localAddress: '127.0.0.2' });
  });
});
