/* eslint-disable import/export */
/* eslint-disable complexity */
/* eslint-disable @typescript-eslint/no-namespace */
/* eslint-disable @typescript-eslint/no-unnecessary-boolean-literal-compare */
/* eslint-disable @typescript-eslint/no-empty-interface */
/* eslint-disable import/consistent-type-specifier-style */
/* eslint-disable @typescript-eslint/no-unused-vars */

import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message } from 'protons-runtime'
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface KvRequestPb {
  kind: KvRequestPb.Kind
  command: Uint8Array
  keys: Uint8Array[]
  now: bigint
}

export namespace KvRequestPb {
  export enum Kind {
    WRITE = 'WRITE',
    GET = 'GET',
    MGET = 'MGET',
    EXISTS = 'EXISTS',
    PTTL = 'PTTL'
  }

  enum __KindValues {
    WRITE = 0,
    GET = 1,
    MGET = 2,
    EXISTS = 3,
    PTTL = 4
  }

  export namespace Kind {
    export const codec = (): Codec<Kind> => {
      return enumeration<Kind>(__KindValues)
    }
  }

  let _codec: Codec<KvRequestPb>

  export const codec = (): Codec<KvRequestPb> => {
    if (_codec == null) {
      _codec = message<KvRequestPb>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.kind != null && __KindValues[obj.kind] !== 0) {
          w.uint32(8)
          KvRequestPb.Kind.codec().encode(obj.kind, w)
        }

        if ((obj.command != null && obj.command.byteLength > 0)) {
          w.uint32(18)
          w.bytes(obj.command)
        }

        if (obj.keys != null) {
          for (const value of obj.keys) {
            w.uint32(26)
            w.bytes(value)
          }
        }

        if ((obj.now != null && obj.now !== 0n)) {
          w.uint32(32)
          w.uint64(obj.now)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          kind: Kind.WRITE,
          command: uint8ArrayAlloc(0),
          keys: [],
          now: 0n
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.kind = KvRequestPb.Kind.codec().decode(reader)
              break
            }
            case 2: {
              obj.command = reader.bytes()
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

  export const encode = (obj: Partial<KvRequestPb>): Uint8Array => {
    return encodeMessage(obj, KvRequestPb.codec())
  }

  export const decode = (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<KvRequestPb>): KvRequestPb => {
    return decodeMessage(buf, KvRequestPb.codec(), opts)
  }
}

export interface KvResponsePb {
  type: KvResponsePb.Type
  int: bigint
  value: Uint8Array
  message: string
  values: Uint8Array[]
  present: boolean[]
  code: string
  leaderId: string
}

export namespace KvResponsePb {
  export enum Type {
    OK = 'OK',
    NIL = 'NIL',
    INT = 'INT',
    BULK = 'BULK',
    ERROR = 'ERROR',
    ARRAY = 'ARRAY',
    FAILURE = 'FAILURE'
  }

  enum __TypeValues {
    OK = 0,
    NIL = 1,
    INT = 2,
    BULK = 3,
    ERROR = 4,
    ARRAY = 5,
    FAILURE = 6
  }

  export namespace Type {
    export const codec = (): Codec<Type> => {
      return enumeration<Type>(__TypeValues)
    }
  }

  let _codec: Codec<KvResponsePb>

  export const codec = (): Codec<KvResponsePb> => {
    if (_codec == null) {
      _codec = message<KvResponsePb>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.type != null && __TypeValues[obj.type] !== 0) {
          w.uint32(8)
          KvResponsePb.Type.codec().encode(obj.type, w)
        }

        if ((obj.int != null && obj.int !== 0n)) {
          w.uint32(16)
          w.sint64(obj.int)
        }

        if ((obj.value != null && obj.value.byteLength > 0)) {
          w.uint32(26)
          w.bytes(obj.value)
        }

        if ((obj.message != null && obj.message !== '')) {
          w.uint32(34)
          w.string(obj.message)
        }

        if (obj.values != null) {
          for (const value of obj.values) {
            w.uint32(42)
            w.bytes(value)
          }
        }

        if (obj.present != null) {
          for (const value of obj.present) {
            w.uint32(48)
            w.bool(value)
          }
        }

        if ((obj.code != null && obj.code !== '')) {
          w.uint32(58)
          w.string(obj.code)
        }

        if ((obj.leaderId != null && obj.leaderId !== '')) {
          w.uint32(66)
          w.string(obj.leaderId)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          type: Type.OK,
          int: 0n,
          value: uint8ArrayAlloc(0),
          message: '',
          values: [],
          present: [],
          code: '',
          leaderId: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.type = KvResponsePb.Type.codec().decode(reader)
              break
            }
            case 2: {
              obj.int = reader.sint64()
              break
            }
            case 3: {
              obj.value = reader.bytes()
              break
            }
            case 4: {
              obj.message = reader.string()
              break
            }
            case 5: {
              if (opts.limits?.values != null && obj.values.length === opts.limits.values) {
                throw new MaxLengthError('Decode error - map field "values" had too many elements')
              }

              obj.values.push(reader.bytes())
              break
            }
            case 6: {
              if (opts.limits?.present != null && obj.present.length === opts.limits.present) {
                throw new MaxLengthError('Decode error - map field "present" had too many elements')
              }

              obj.present.push(reader.bool())
              break
            }
            case 7: {
              obj.code = reader.string()
              break
            }
            case 8: {
              obj.leaderId = reader.string()
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

  export const encode = (obj: Partial<KvResponsePb>): Uint8Array => {
    return encodeMessage(obj, KvResponsePb.codec())
  }

  export const decode = (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<KvResponsePb>): KvResponsePb => {
    return decodeMessage(buf, KvResponsePb.codec(), opts)
  }
}
