/* eslint-disable import/export */
/* eslint-disable complexity */
/* eslint-disable @typescript-eslint/no-namespace */
/* eslint-disable @typescript-eslint/no-unnecessary-boolean-literal-compare */
/* eslint-disable @typescript-eslint/no-empty-interface */
/* eslint-disable import/consistent-type-specifier-style */
/* eslint-disable @typescript-eslint/no-unused-vars */

import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message } from 'protons-runtime'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface KvCommandPb {
  op: KvCommandPb.Op
  keys: Uint8Array[]
  values: Uint8Array[]
  condition: number
  expiresAt: bigint
  delta: bigint
  returnOld: boolean
  now: bigint
}

export namespace KvCommandPb {
  export enum Op {
    SET = 'SET',
    DEL = 'DEL',
    INCR = 'INCR',
    MSET = 'MSET'
  }

  enum __OpValues {
    SET = 0,
    DEL = 1,
    INCR = 2,
    MSET = 3
  }

  export namespace Op {
    export const codec = (): Codec<Op> => {
      return enumeration<Op>(__OpValues)
    }
  }

  let _codec: Codec<KvCommandPb>

  export const codec = (): Codec<KvCommandPb> => {
    if (_codec == null) {
      _codec = message<KvCommandPb>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.op != null && __OpValues[obj.op] !== 0) {
          w.uint32(8)
          KvCommandPb.Op.codec().encode(obj.op, w)
        }

        if (obj.keys != null) {
          for (const value of obj.keys) {
            w.uint32(18)
            w.bytes(value)
          }
        }

        if (obj.values != null) {
          for (const value of obj.values) {
            w.uint32(26)
            w.bytes(value)
          }
        }

        if ((obj.condition != null && obj.condition !== 0)) {
          w.uint32(32)
          w.uint32(obj.condition)
        }

        if ((obj.expiresAt != null && obj.expiresAt !== 0n)) {
          w.uint32(40)
          w.uint64(obj.expiresAt)
        }

        if ((obj.delta != null && obj.delta !== 0n)) {
          w.uint32(48)
          w.sint64(obj.delta)
        }

        if ((obj.returnOld != null && obj.returnOld !== false)) {
          w.uint32(56)
          w.bool(obj.returnOld)
        }

        if ((obj.now != null && obj.now !== 0n)) {
          w.uint32(64)
          w.uint64(obj.now)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          op: Op.SET,
          keys: [],
          values: [],
          condition: 0,
          expiresAt: 0n,
          delta: 0n,
          returnOld: false,
          now: 0n
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.op = KvCommandPb.Op.codec().decode(reader)
              break
            }
            case 2: {
              if (opts.limits?.keys != null && obj.keys.length === opts.limits.keys) {
                throw new MaxLengthError('Decode error - map field "keys" had too many elements')
              }

              obj.keys.push(reader.bytes())
              break
            }
            case 3: {
              if (opts.limits?.values != null && obj.values.length === opts.limits.values) {
                throw new MaxLengthError('Decode error - map field "values" had too many elements')
              }

              obj.values.push(reader.bytes())
              break
            }
            case 4: {
              obj.condition = reader.uint32()
              break
            }
            case 5: {
              obj.expiresAt = reader.uint64()
              break
            }
            case 6: {
              obj.delta = reader.sint64()
              break
            }
            case 7: {
              obj.returnOld = reader.bool()
              break
            }
            case 8: {
              obj.now = reader.uint64()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      })
    }

    return _codec
  }

  export const encode = (obj: Partial<KvCommandPb>): Uint8Array => {
    return encodeMessage(obj, KvCommandPb.codec())
  }

  export const decode = (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<KvCommandPb>): KvCommandPb => {
    return decodeMessage(buf, KvCommandPb.codec(), opts)
  }
}

export interface KvSnapshotPb {
  version: number
  appliedIndex: bigint
  keys: Uint8Array[]
  values: Uint8Array[]
  expiresAt: bigint[]
}

export namespace KvSnapshotPb {
  let _codec: Codec<KvSnapshotPb>

  export const codec = (): Codec<KvSnapshotPb> => {
    if (_codec == null) {
      _codec = message<KvSnapshotPb>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.version != null && obj.version !== 0)) {
          w.uint32(8)
          w.uint32(obj.version)
        }

        if ((obj.appliedIndex != null && obj.appliedIndex !== 0n)) {
          w.uint32(16)
          w.uint64(obj.appliedIndex)
        }

        if (obj.keys != null) {
          for (const value of obj.keys) {
            w.uint32(26)
            w.bytes(value)
          }
        }

        if (obj.values != null) {
          for (const value of obj.values) {
            w.uint32(34)
            w.bytes(value)
          }
        }

        if (obj.expiresAt != null) {
          for (const value of obj.expiresAt) {
            w.uint32(40)
            w.uint64(value)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          version: 0,
          appliedIndex: 0n,
          keys: [],
          values: [],
          expiresAt: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.version = reader.uint32()
              break
            }
            case 2: {
              obj.appliedIndex = reader.uint64()
              break
            }
            case 3: {
              if (opts.limits?.keys != null && obj.keys.length === opts.limits.keys) {
                throw new MaxLengthError('Decode error - map field "keys" had too many elements')
              }

              obj.keys.push(reader.bytes())
              break
            }
            case 4: {
              if (opts.limits?.values != null && obj.values.length === opts.limits.values) {
                throw new MaxLengthError('Decode error - map field "values" had too many elements')
              }

              obj.values.push(reader.bytes())
              break
            }
            case 5: {
              if (opts.limits?.expiresAt != null && obj.expiresAt.length === opts.limits.expiresAt) {
                throw new MaxLengthError('Decode error - map field "expiresAt" had too many elements')
              }

              obj.expiresAt.push(reader.uint64())
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      })
    }

    return _codec
  }

  export const encode = (obj: Partial<KvSnapshotPb>): Uint8Array => {
    return encodeMessage(obj, KvSnapshotPb.codec())
  }

  export const decode = (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<KvSnapshotPb>): KvSnapshotPb => {
    return decodeMessage(buf, KvSnapshotPb.codec(), opts)
  }
}
