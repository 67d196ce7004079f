// Exercise correlation_plugin.cpp's logic against real TensorRT headers, without libnvinfer or a GPU.
//
// Built by tests/test_plugin_build.py together with correlation_plugin.cpp for every TensorRT include/
// directory in third_party/. TensorRT's own symbols are stubbed: getPluginRegistry() returns null (so
// load-time registration is skipped), the kernel's C ABI records its arguments, and IExprBuilder is backed
// by a constant-folding fake of the header's apiv::VExprBuilder so getOutputShapes() yields numbers.
// Prints "PASS <n> checks" and exits 0, or prints each failed check and exits 1.
#include "correlation_api.h"
#include "correlation_plugin.h"

#include <NvInferImpl.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

using namespace nvinfer1;
using edgeflow::trt::CorrelationAttributes;
using edgeflow::trt::CorrelationPlugin;
using edgeflow::trt::CorrelationPluginCreator;

// ---- stubs for what libnvinfer and the CUDA kernel would provide -----------------------------------------------

extern "C" IPluginRegistry* getPluginRegistry() noexcept
{
    return nullptr;
}

namespace
{
struct ForwardCall
{
    int calls{0};
    int dtype{-1}, b{0}, c{0}, h{0}, w{0}, md{0}, k{0}, s1{0}, s2{0}, pad{0}, normalize{0};
    void const* f1{nullptr};
    void* out{nullptr};
} gCall;
} // namespace

extern "C" int edgeflow_correlation_forward(void const* f1, void const*, void* out, int dtype, int batch, int channels,
    int height, int width, int md, int k, int s1, int s2, int pad, int normalize, int, void*)
{
    gCall = ForwardCall{gCall.calls + 1, dtype, batch, channels, height, width, md, k, s1, s2, pad, normalize, f1, out};
    return 0;
}

extern "C" char const* edgeflow_correlation_status_string(int)
{
    return "stub";
}

extern "C" char const* edgeflow_correlation_last_cuda_error(void)
{
    return "";
}

// ---- constant-folding IExprBuilder ---------------------------------------------------------------------------

namespace
{

class ConstDim : public IDimensionExpr
{
public:
    explicit ConstDim(int64_t v)
    {
        mValue.v = v;
        mImpl = &mValue;
    }
    ~ConstDim() noexcept override = default;

private:
    struct Value : apiv::VDimensionExpr
    {
        int64_t v{0};
        bool isConstant() const override
        {
            return true;
        }
        int64_t getConstantValue() const override
        {
            return v;
        }
        bool isSizeTensor() const override
        {
            return false;
        }
    } mValue;
};

class FoldingBuilder : public IExprBuilder
{
public:
    FoldingBuilder()
    {
        mFold.owner = this;
        mImpl = &mFold;
    }
    ~FoldingBuilder() noexcept override = default;

    IDimensionExpr const* make(int64_t v)
    {
        mDims.emplace_back(v);
        return &mDims.back();
    }

private:
    struct Fold : apiv::VExprBuilder
    {
        FoldingBuilder* owner{nullptr};
        IDimensionExpr const* constant(int64_t value) override
        {
            return owner->make(value);
        }
        IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override
        {
            int64_t const x = a.getConstantValue();
            int64_t const y = b.getConstantValue();
            switch (op)
            {
            case DimensionOperation::kSUM: return owner->make(x + y);
            case DimensionOperation::kPROD: return owner->make(x * y);
            case DimensionOperation::kSUB: return owner->make(x - y);
            case DimensionOperation::kFLOOR_DIV: return owner->make(x >= 0 ? x / y : -((-x + y - 1) / y));
            case DimensionOperation::kCEIL_DIV: return owner->make(x >= 0 ? (x + y - 1) / y : -((-x) / y));
            default: return owner->make(-999);
            }
        }
        IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
        {
            return nullptr;
        }
    } mFold;
    std::deque<ConstDim> mDims;
};

// ---- checks ------------------------------------------------------------------------------------------------

int gChecks = 0;
int gFailures = 0;

void check(bool ok, std::string const& what)
{
    ++gChecks;
    if (!ok)
    {
        ++gFailures;
        std::printf("FAIL %s\n", what.c_str());
    }
}

struct Fields
{
    std::vector<int32_t> values;
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};

    Fields(std::vector<std::pair<char const*, int32_t>> const& named)
    {
        values.reserve(named.size());
        for (auto const& nv : named)
        {
            values.push_back(nv.second);
            fields.emplace_back(nv.first, &values.back(), PluginFieldType::kINT32, 1);
        }
        fc.nbFields = int32_t(fields.size());
        fc.fields = fields.data();
    }
};

bool sameAttrs(CorrelationAttributes const& a, CorrelationAttributes const& b)
{
    return a.maxDisplacement == b.maxDisplacement && a.kernelSize == b.kernelSize && a.stride1 == b.stride1
        && a.stride2 == b.stride2 && a.padSize == b.padSize && a.normalize == b.normalize;
}

CorrelationPlugin* asPlugin(IPluginV3* p)
{
    return dynamic_cast<CorrelationPlugin*>(p);
}

DynamicPluginTensorDesc desc(DataType type, TensorFormat format)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = format;
    d.desc.dims.nbDims = 4;
    for (int i = 0; i < 4; ++i)
        d.desc.dims.d[i] = -1;
    return d;
}

void checkOutputShape(CorrelationAttributes const& a, int64_t b, int64_t c, int64_t h, int64_t w, int64_t ec,
    int64_t eh, int64_t ew)
{
    CorrelationPlugin plugin(a);
    FoldingBuilder builder;
    DimsExprs in[2];
    for (auto& d : in)
    {
        d.nbDims = 4;
        d.d[0] = builder.make(b);
        d.d[1] = builder.make(c);
        d.d[2] = builder.make(h);
        d.d[3] = builder.make(w);
    }
    DimsExprs out{};
    IPluginV3OneBuild* build = &plugin;
    int32_t const rc = build->getOutputShapes(in, 2, nullptr, 0, &out, 1, builder);
    std::string const what = "getOutputShapes md=" + std::to_string(a.maxDisplacement) + " k=" + std::to_string(a.kernelSize)
        + " s1=" + std::to_string(a.stride1) + " s2=" + std::to_string(a.stride2) + " pad=" + std::to_string(a.padSize);
    check(rc == 0 && out.nbDims == 4, what + ": status");
    if (rc == 0)
    {
        check(out.d[0]->getConstantValue() == b, what + ": batch");
        check(out.d[1]->getConstantValue() == ec, what + ": channels " + std::to_string(out.d[1]->getConstantValue()));
        check(out.d[2]->getConstantValue() == eh, what + ": height " + std::to_string(out.d[2]->getConstantValue()));
        check(out.d[3]->getConstantValue() == ew, what + ": width " + std::to_string(out.d[3]->getConstantValue()));
    }
    DimsExprs three = in[0];
    three.nbDims = 3;
    DimsExprs bad[2] = {three, three};
    check(build->getOutputShapes(bad, 2, nullptr, 0, &out, 1, builder) != 0, what + ": rejects 3-D inputs");
}

} // namespace

int main()
{
    CorrelationPluginCreator creator;
    IPluginCreatorV3One* ic = &creator;
    check(std::strcmp(ic->getPluginName(), "Correlation") == 0, "creator name");
    check(std::strcmp(ic->getPluginVersion(), "1") == 0, "creator version");
    check(std::strcmp(ic->getPluginNamespace(), "edgeflow") == 0, "creator namespace");
    PluginFieldCollection const* names = ic->getFieldNames();
    char const* expected[] = {"max_displacement", "kernel_size", "stride1", "stride2", "pad_size", "normalize"};
    check(names != nullptr && names->nbFields == 6, "six creator fields");
    for (int i = 0; names && i < names->nbFields && i < 6; ++i)
        check(std::strcmp(names->fields[i].name, expected[i]) == 0, std::string("field ") + expected[i]);

    // Build phase: the ONNX parser's fields, with the parser's own string attribute mixed in.
    char const ns[] = "edgeflow";
    Fields onnx({{"max_displacement", 20}, {"kernel_size", 1}, {"stride1", 1}, {"stride2", 2}, {"pad_size", 20},
        {"normalize", 1}});
    onnx.fields.emplace_back("plugin_namespace", ns, PluginFieldType::kCHAR, int32_t(sizeof(ns)));
    onnx.fc.nbFields = int32_t(onnx.fields.size());
    onnx.fc.fields = onnx.fields.data();
    IPluginV3* built = ic->createPlugin("corr", &onnx.fc, TensorRTPhase::kBUILD);
    check(built != nullptr, "createPlugin from ONNX attributes");
    CorrelationPlugin* plugin = asPlugin(built);
    CorrelationAttributes const want{20, 1, 1, 2, 20, 1};
    check(plugin && sameAttrs(plugin->attributes(), want), "attributes parsed");

    // Capabilities.
    auto* core = dynamic_cast<IPluginV3OneCore*>(built->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* bld = dynamic_cast<IPluginV3OneBuild*>(built->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* rt = dynamic_cast<IPluginV3OneRuntime*>(built->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    check(core && bld && rt, "core, build and runtime capabilities");
    check(core && std::strcmp(core->getPluginName(), "Correlation") == 0, "core name");
    check(core && std::strcmp(core->getPluginNamespace(), "edgeflow") == 0, "core namespace");
    check(bld && bld->getNbOutputs() == 1, "one output");

    // Serialization round trip: getFieldsToSerialize() -> createPlugin(kRUNTIME).
    PluginFieldCollection const* ser = rt ? rt->getFieldsToSerialize() : nullptr;
    check(ser && ser->nbFields == 6, "six serialized fields");
    for (int i = 0; ser && i < ser->nbFields && i < 6; ++i)
    {
        check(std::strcmp(ser->fields[i].name, expected[i]) == 0 && ser->fields[i].type == PluginFieldType::kINT32
                && ser->fields[i].length == 1,
            std::string("serialized field ") + expected[i]);
    }
    IPluginV3* restored = ser ? ic->createPlugin("corr", ser, TensorRTPhase::kRUNTIME) : nullptr;
    check(restored && sameAttrs(asPlugin(restored)->attributes(), want), "round trip keeps the attributes");

    // clone / attachToContext own their fields.
    IPluginV3* cloned = built->clone();
    check(cloned && sameAttrs(asPlugin(cloned)->attributes(), want), "clone keeps the attributes");
    if (cloned && ser)
    {
        auto* crt = dynamic_cast<IPluginV3OneRuntime*>(cloned->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        PluginFieldCollection const* cser = crt->getFieldsToSerialize();
        check(cser->fields[0].data != ser->fields[0].data && *static_cast<int32_t const*>(cser->fields[0].data) == 20,
            "clone serializes from its own storage");
    }
    IPluginV3* attached = rt ? rt->attachToContext(nullptr) : nullptr;
    check(attached && sameAttrs(asPlugin(attached)->attributes(), want), "attachToContext clones");

    // Defaults and rejections.
    Fields onlyMd({{"max_displacement", 4}});
    IPluginV3* defaults = ic->createPlugin("d", &onlyMd.fc, TensorRTPhase::kBUILD);
    check(defaults && sameAttrs(asPlugin(defaults)->attributes(), CorrelationAttributes{4, 1, 1, 1, 4, 1}),
        "defaults: k 1, strides 1, pad = md, normalize 1");
    int64_t md64 = 3;
    PluginField f64("max_displacement", &md64, PluginFieldType::kINT64, 1);
    PluginFieldCollection fc64{1, &f64};
    IPluginV3* from64 = ic->createPlugin("i64", &fc64, TensorRTPhase::kBUILD);
    check(from64 && asPlugin(from64)->attributes().maxDisplacement == 3, "INT64 fields accepted");
    Fields evenK({{"max_displacement", 4}, {"kernel_size", 2}});
    Fields noMd({{"kernel_size", 1}});
    Fields badStride({{"max_displacement", 4}, {"stride2", 0}});
    Fields negPad({{"max_displacement", 4}, {"pad_size", -1}});
    check(ic->createPlugin("x", &evenK.fc, TensorRTPhase::kBUILD) == nullptr, "rejects even kernel_size");
    check(ic->createPlugin("x", &noMd.fc, TensorRTPhase::kBUILD) == nullptr, "rejects missing max_displacement");
    check(ic->createPlugin("x", &badStride.fc, TensorRTPhase::kBUILD) == nullptr, "rejects stride2 0");
    check(ic->createPlugin("x", &negPad.fc, TensorRTPhase::kBUILD) == nullptr, "rejects negative pad_size");
    check(ic->createPlugin("x", nullptr, TensorRTPhase::kBUILD) == nullptr, "rejects no fields");

    // Formats and types.
    if (bld)
    {
        DynamicPluginTensorDesc io[3] = {desc(DataType::kFLOAT, TensorFormat::kLINEAR),
            desc(DataType::kFLOAT, TensorFormat::kLINEAR), desc(DataType::kFLOAT, TensorFormat::kLINEAR)};
        check(bld->supportsFormatCombination(0, io, 2, 1), "fp32 linear input");
        check(bld->supportsFormatCombination(1, io, 2, 1), "fp32 second input");
        check(bld->supportsFormatCombination(2, io, 2, 1), "fp32 output");
        io[1].desc.type = DataType::kHALF;
        check(!bld->supportsFormatCombination(1, io, 2, 1), "mixed input types rejected");
        for (auto& d : io)
            d.desc.type = DataType::kHALF;
        check(bld->supportsFormatCombination(0, io, 2, 1) && bld->supportsFormatCombination(2, io, 2, 1), "fp16");
        io[0].desc.type = DataType::kINT8;
        check(!bld->supportsFormatCombination(0, io, 2, 1), "int8 rejected");
        io[0].desc.type = DataType::kBF16;
        check(!bld->supportsFormatCombination(0, io, 2, 1), "bf16 rejected");
        io[0] = desc(DataType::kFLOAT, TensorFormat::kCHW32);
        check(!bld->supportsFormatCombination(0, io, 2, 1), "non-linear format rejected");
        check(!bld->supportsFormatCombination(3, io, 2, 1), "position out of range");

        DataType in2[2] = {DataType::kHALF, DataType::kHALF};
        DataType outType = DataType::kFLOAT;
        check(bld->getOutputDataTypes(&outType, 1, in2, 2) == 0 && outType == DataType::kHALF, "output type = input");

        DynamicPluginTensorDesc cin[2] = {desc(DataType::kHALF, TensorFormat::kLINEAR),
            desc(DataType::kHALF, TensorFormat::kLINEAR)};
        DynamicPluginTensorDesc cout = desc(DataType::kHALF, TensorFormat::kLINEAR);
        check(bld->configurePlugin(cin, 2, &cout, 1) == 0, "configurePlugin with wildcard dims");
        cin[0].desc.dims.d[1] = 32;
        cin[1].desc.dims.d[1] = 16;
        check(bld->configurePlugin(cin, 2, &cout, 1) != 0, "configurePlugin rejects different channels");
    }

    // Output shapes through IExprBuilder, incl. ceil division.
    checkOutputShape({4, 1, 1, 1, 4, 1}, 2, 32, 112, 256, 81, 112, 256);   // PWC level 2
    checkOutputShape({20, 1, 1, 2, 20, 1}, 1, 256, 48, 64, 441, 48, 64);   // FlowNetC
    checkOutputShape({4, 3, 2, 2, 5, 1}, 1, 8, 19, 40, 25, 10, 20);        // ceil(19 / 2), ceil(40 / 2)
    checkOutputShape({3, 3, 1, 1, 4, 1}, 1, 8, 10, 12, 49, 10, 12);
    checkOutputShape({2, 1, 1, 1, 0, 0}, 1, 8, 12, 9, 25, 8, 5);
    checkOutputShape({6, 3, 2, 2, 6, 1}, 3, 6, 17, 23, 49, 8, 11);

    // enqueue forwards shapes, dtype and attributes to the kernel.
    if (rt)
    {
        PluginTensorDesc in[2]{};
        for (auto& d : in)
        {
            d.type = DataType::kHALF;
            d.format = TensorFormat::kLINEAR;
            d.dims.nbDims = 4;
            d.dims.d[0] = 2;
            d.dims.d[1] = 32;
            d.dims.d[2] = 48;
            d.dims.d[3] = 64;
        }
        PluginTensorDesc out = in[0];
        int dummy = 0;
        void const* inputs[2] = {&dummy, &dummy};
        void* outputs[1] = {&dummy};
        check(rt->onShapeChange(in, 2, &out, 1) == 0, "onShapeChange");
        check(rt->enqueue(in, &out, inputs, outputs, nullptr, nullptr) == 0, "enqueue status");
        check(gCall.calls == 1 && gCall.dtype == EDGEFLOW_DTYPE_FLOAT16 && gCall.b == 2 && gCall.c == 32 && gCall.h == 48
                && gCall.w == 64 && gCall.md == 20 && gCall.k == 1 && gCall.s1 == 1 && gCall.s2 == 2 && gCall.pad == 20
                && gCall.normalize == 1 && gCall.f1 == &dummy && gCall.out == &dummy,
            "enqueue arguments");
    }

    // Library entry points (no registry here: getPluginRegistry() is null).
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    check(n == 1 && creators && creators[0], "getCreators returns one creator");
    auto* c0 = creators ? dynamic_cast<IPluginCreatorV3One*>(creators[0]) : nullptr;
    check(c0 && std::strcmp(c0->getPluginNamespace(), "edgeflow") == 0, "getCreators creator is ours");
    setLoggerFinder(nullptr);
    check(edgeflow_plugin_tensorrt_version() == NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH,
        "edgeflow_plugin_tensorrt_version");

    for (IPluginV3* p : {built, restored, cloned, attached, defaults, from64})
        delete p;
    if (gFailures)
    {
        std::printf("FAILED %d of %d checks (TensorRT %d.%d headers)\n", gFailures, gChecks, NV_TENSORRT_MAJOR,
            NV_TENSORRT_MINOR);
        return 1;
    }
    std::printf("PASS %d checks (TensorRT %d.%d.%d headers)\n", gChecks, NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR,
        NV_TENSORRT_PATCH);
    return 0;
}
